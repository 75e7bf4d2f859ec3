"""printing: text, LaTeX and NumPy printers of the expression vocabulary.

Importing the package lets the core's messages print expressions in the text notation
(``derive.core.affine.register_text``; the core imports no printer)."""
from derive.core import affine as _affine
from derive.printing.text import text as _text

_affine.register_text(_text)
