"""Customer offboarding: the end of a customer's contract - export, notice period, deletion of
the customer's data in Vern and in the product databases, a signed certificate of deletion."""
