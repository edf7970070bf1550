"""Items know their harness documents: the item -> (task, doc_id) map of a bank."""

from __future__ import annotations

import pandas as pd
import pytest

from fluid_bayes.bank import ItemBank
from fluid_bayes.cli.main import main
from fluid_bayes.exceptions import BankError, DataError
from fluid_bayes.harness.documents import (
    DocumentMap,
    attach_documents,
    bank_documents,
    read_items_map,
)


def _bank(items):
    params = pd.DataFrame({"a": [1.0 + 0.1 * k for k in range(len(items))],
                           "b": [0.2 * k - 0.5 for k in range(len(items))]},
                          index=pd.Index(items, name="item"))  # fmt: skip
    return ItemBank.from_point_params(params, source="test")


def _write(tmp_path, text, name="map.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_canonical_lm_eval_ids_need_no_map():
    bank = _bank(["arc_easy/3", "arc_easy/0", "mmlu_x/12"])
    docs = bank_documents(bank)
    assert docs.tasks == ("arc_easy", "arc_easy", "mmlu_x")
    assert docs.lm_eval_ids() == (3, 0, 12)
    assert docs.lookup(["mmlu_x/12", "arc_easy/0"]) == {
        "mmlu_x": [("mmlu_x/12", "12")],
        "arc_easy": [("arc_easy/0", "0")],
    }
    assert docs.item_of("arc_easy", 3) == "arc_easy/3"
    assert docs.item_of("arc_easy", 7) is None


def test_bank_without_documents_is_a_clear_error():
    with pytest.raises(BankError, match=r"item 'q1' has no harness document.*bank map"):
        bank_documents(_bank(["q1", "q2"]))


def test_attached_map_is_stored_reordered_and_part_of_the_identity(tmp_path):
    bank = _bank(["q1", "q2", "q3"])
    p = _write(tmp_path, "item,task,doc_id\nq3,t,0\nq1,t,2\nq2,u,5\n")
    mapped = attach_documents(bank, read_items_map(p))
    docs = bank_documents(mapped)
    assert docs.items == ("q1", "q2", "q3")
    assert docs.tasks == ("t", "u", "t") and docs.doc_ids == ("2", "5", "0")
    assert mapped.config_hash != bank.config_hash
    other = attach_documents(
        bank,
        read_items_map(_write(tmp_path, "item,task,doc_id\nq3,t,1\nq1,t,2\nq2,u,5\n", "o.csv")),
    )
    assert other.config_hash not in (bank.config_hash, mapped.config_hash)
    # the posterior is untouched, and the map survives a save/load round trip
    assert (mapped.a.values == bank.a.values).all()
    loaded = ItemBank.load(mapped.save(tmp_path / "mapped.nc"))
    assert bank_documents(loaded) == docs.__class__(docs.items, docs.tasks, docs.doc_ids, "bank")
    assert loaded.config_hash == mapped.config_hash


def test_sample_id_column_is_accepted_for_inspect(tmp_path):
    p = _write(tmp_path, "item,task,sample_id\nq1,mmlu,abstract_algebra_0\nq2,mmlu,7\n")
    docs = read_items_map(p)
    assert docs.doc_ids == ("abstract_algebra_0", "7")
    with pytest.raises(BankError, match=r"item 'q1': document id 'abstract_algebra_0' is not"):
        docs.lm_eval_ids()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("item,doc_id\nq1,0\n", r"map.csv: items map needs columns .*missing task"),
        ("item,task,doc_id\nq1,t,0\nq2,,1\n", r"map.csv, line 3: empty task"),
        ("item,task,doc_id\nq1,t,0\nq1,t,1\n", r"line 3: item 'q1' already mapped on line 2"),
        ("item,task,doc_id\nq1,t,0\nq2,t,0\n", r"line 3: document t/0 already mapped"),
        ("item,task,doc_id\n", r"items map has no rows"),
        # ids equal after NFC normalization are the same item
        ("item,task,doc_id\ncaf\u00e9,t,0\ncafe\u0301,t,1\n", r"line 3: item 'café' already"),
    ],
)
def test_malformed_maps_name_the_line(tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        read_items_map(_write(tmp_path, text))


def test_map_must_cover_exactly_the_bank(tmp_path):
    bank = _bank(["q1", "q2", "q3"])
    short = read_items_map(_write(tmp_path, "item,task,doc_id\nq1,t,0\nq2,t,1\n"))
    with pytest.raises(BankError, match=r"1 bank items without a document in the map: 'q3'"):
        attach_documents(bank, short)
    longer = read_items_map(_write(tmp_path, "item,task,doc_id\nq1,t,0\nq2,t,1\nq3,t,2\nq9,t,3\n"))
    with pytest.raises(BankError, match=r"1 map items that are not in the bank: 'q9'"):
        attach_documents(bank, longer)


def test_bank_map_command(tmp_path, capsys):
    src = _bank(["q1", "q2"]).save(tmp_path / "b.nc")
    p = _write(tmp_path, "item,task,doc_id\nq1,t,4\nq2,t,1\n")
    out = tmp_path / "mapped.nc"
    assert main(["bank", "map", str(src), "--items-map", str(p), "--out", str(out)]) == 0
    assert "mapped 2 items to documents of t" in capsys.readouterr().out
    assert bank_documents(ItemBank.load(out)).lm_eval_ids() == (4, 1)
    bad = _write(tmp_path, "item,task,doc_id\nq1,t,4\n", "bad.csv")
    assert main(["bank", "map", str(src), "--items-map", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bank items without a document in the map: 'q2'" in err and "Traceback" not in err


def test_document_map_rejects_ragged_fields():
    with pytest.raises(ValueError, match="same length"):
        DocumentMap(("a",), ("t", "u"), ("0",))


def test_calibrate_attaches_a_map_checked_before_the_fit(tmp_path, capsys):
    from conftest import PACKAGE_DATA

    data = PACKAGE_DATA / "lsat" / "lsat7_patterns.csv"
    items = [f"Item.{k}" for k in range(1, 6)]
    out = tmp_path / "lsat.nc"
    rows = [f"{i},lsat,{4 - k}\n" for k, i in enumerate(items)]
    wrong = _write(tmp_path, "item,task,doc_id\n" + "".join(rows[:4]), "w.csv")
    argv = ["calibrate", str(data), "--out", str(out), "--draws", "30", "--tune", "30",
            "--chains", "1"]  # fmt: skip
    assert main([*argv, "--items-map", str(wrong)]) == 2
    err = capsys.readouterr().err
    assert "1 data items without a document in the map: 'Item.5'" in err
    assert "Traceback" not in err and "sampling" not in err.lower() and not out.exists()
    right = _write(tmp_path, "item,task,doc_id\n" + "".join(rows), "r.csv")
    assert main([*argv, "--items-map", str(right)]) == 0
    capsys.readouterr()
    bank = ItemBank.load(out)
    assert bank_documents(bank).lm_eval_ids() == (4, 3, 2, 1, 0)
    assert bank.meta.config["documents"] == bank_documents(bank).fingerprint()
