"""CT series selector: SDK JSON rules + content QC + ranking with a machine-readable report.

Pure modules (no holoscan): ``rules`` (load/validate JSON rules), ``qc`` (content checks), ``kernels`` (vendor
kernel classes), ``selection`` (ranking, report, BadInputError). ``operator`` holds ``CTSeriesSelectorOperator``
(import it from ``operators.series_selector.operator``; importing this package does not import holoscan).
"""

from .kernels import classify_kernel
from .qc import QCConfig, check_series
from .rules import default_rules_path, load_rules
from .selection import RuleOutcome, SelectionConfig, SelectionReport, SeriesInput, select_ct_series

__all__ = ["QCConfig", "RuleOutcome", "SelectionConfig", "SelectionReport", "SeriesInput", "check_series",
           "classify_kernel", "default_rules_path", "load_rules", "select_ct_series"]
