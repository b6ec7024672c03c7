"""bench/rca_accuracy.py's scoring and its report, on made-up results."""

import pytest
import rca_accuracy


def result(truth, ranked, seconds=1.0):
    case = {"id": f"case-{truth}-{len(ranked)}", "truth": {"service": truth, "fault": "cpu"}}
    return {"case": case, "ranked": ranked, "seconds": seconds, "scan_seconds": seconds / 2}


def test_ac_at_k_and_avg_at_5():
    results = [
        result("a", ["a", "b", "c"]),  # rank 1
        result("b", ["a", "b", "c"]),  # rank 2
        result("c", ["x", "y", "z", "w", "c"], seconds=3.0),  # rank 5
        result("d", ["a", "b"]),  # missing
    ]

    summary = rca_accuracy.score(results)

    assert summary["ac"] == [0.25, 0.5, 0.5, 0.5, 0.75]
    assert summary["avg5"] == pytest.approx(0.5)
    assert summary["mean_seconds"] == pytest.approx(1.5)
    assert summary["p95_seconds"] == 3.0
    assert summary["scan_mean_seconds"] == pytest.approx(0.75)
    assert summary["scan_p95_seconds"] == 1.5


def test_the_doc_section_of_one_pack_is_replaced_and_the_others_kept(tmp_path, monkeypatch):
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\n## Webhook ingest\n\nfigures\n")
    monkeypatch.setattr(rca_accuracy, "DOC_PATH", doc)

    rca_accuracy.write_doc("pack-b", "### pack-b\n\nfirst")
    rca_accuracy.write_doc("pack-a", "### pack-a\n\nonly")
    rca_accuracy.write_doc("pack-b", "### pack-b\n\nsecond")

    text = doc.read_text()
    assert text.count(rca_accuracy.SECTION) == 1
    assert "## Webhook ingest\n\nfigures" in text
    assert "first" not in text and "second" in text and "only" in text
    assert text.index("### pack-a") < text.index("### pack-b")
