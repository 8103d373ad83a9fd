import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import PLUGIN, operator, run_operator

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_knn_disagreement_through_execute_operator(blob_dataset):
    ds = blob_dataset(noise_rate=0.15)
    summary = run_operator("compute_knn_disagreement", ds)
    assert summary["num_samples"] == len(ds)
    scores = np.array(ds.values("knn_disagreement"))
    noisy = np.array(ds.values("is_noisy"))
    assert scores[noisy].mean() > scores[~noisy].mean() + 0.3
    assert "knn_disagreement" in ds.list_runs()
    info = ds.get_run_info("knn_disagreement")
    assert info.config.method == "knn_disagreement"
    assert info.config.params["k"] == 10
    assert set(info.config.fields) == {"knn_disagreement", "knn_label"}


def test_knn_delegated(blob_dataset):
    from conftest import run_delegated

    ds = blob_dataset()
    doc = run_delegated("compute_knn_disagreement", ds, k=5, output_field="knn5", run_key="knn5")
    assert doc.run_state == "completed", doc.result
    assert ds.count("knn5") == len(ds)
    assert ds.get_run_info("knn5").config.params["k"] == 5
