"""Side-by-side benchmarks: dense, DST (tfprune) and tfmot GMP (own process) -> BENCHMARKS.md.

`python -m bench.run` trains and records, `python -m bench.report` makes tables and the plot;
`python -m bench.lstm` and `python -m bench.lstm_report` the same for the LSTM suite.

Library modules: `records` (the JSONL record store), `runner` (the row loop), `suites` and
`methods` (the MLP/CNN suites), `lstm_suite`, `lstm_train` and `lstm_export` (the LSTM suite),
`figures` and `tflite_figures` (what a row measures), `common` (training, shared with the tfmot
process), `models`. Entry points (`run`, `lstm`, `report`, `lstm_report`, `export_sizes`,
`step_time`, `mask_churn`, `tfmot_baseline`, `pquant_baseline`) import the library and are imported by nothing.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = REPO_ROOT / "bench" / "out"
