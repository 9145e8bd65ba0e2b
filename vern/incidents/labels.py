"""Texts of the incidents domain shown by value (states, phases, timeline entries), listed so
that ``make messages`` finds them; translated where they are shown."""

from vern.core.i18n import N_

LABELS = (
    N_("risk-none"), N_("risk-risk"), N_("risk-high"),
    N_("overdue"), N_("due_soon"), N_("running"), N_("done"), N_("late"), N_("not_required"),
    N_("initial"), N_("update"), N_("final"), N_("open"), N_("closed"),
    N_("breach"), N_("request"), N_("deviation"),
    N_("customer-soon"), N_("customer-passed"), N_("authority-soon"), N_("authority-passed"),
    N_("event-registered"), N_("event-changed"), N_("event-customer_added"),
    N_("event-notice_sent"), N_("event-notice_acknowledged"), N_("event-reported_to_authority"),
    N_("event-subjects_told"), N_("event-exemption_recorded"), N_("event-closed"),
    N_("event-warning_raised"),
)
