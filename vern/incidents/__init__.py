"""Deviations ("avvik") and personal data breaches: the register, the notice clocks, notices to
the customers (controllers), the Datatilsynet form fields, Art. 34 letters, and the posture page
that gathers every domain's open items."""
