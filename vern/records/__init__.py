"""Records of processing (Art. 30), processor agreements (Art. 28) and the documents generated
from them (privacy statement, DPA, record of processing, cookie policy)."""
