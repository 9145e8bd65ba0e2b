"""Internal control of the vendor: control tasks with recurrence and evidence, the risk register and
DPIAs, four-eyes change requests, personnel (confidentiality agreements and trainings), the media
sanitisation log, and the mapping of controls to frameworks (ISO/IEC 27001:2022 Annex A, NSM's
grunnprinsipper for IKT-sikkerhet). These are the vendor's own records: no customer's rows."""
