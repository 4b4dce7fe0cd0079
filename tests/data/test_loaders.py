"""Every loader on every container it accepts, and the messages it gives for bad data."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftflow.data import (
    DataError,
    PreferencePair,
    PromptResponse,
    load_pairs,
    load_preferences,
    load_prompts,
    load_sft_examples,
    load_texts,
)


def test_prompts_from_every_container(tmp_path: Path, lmflow, jsonl) -> None:
    expected = ["Tell me a joke.", "What is RAFT?"]
    t2t = lmflow("text2text", [{"input": p, "output": "x"} for p in expected], name="t2t.json")
    text_only = lmflow("text_only", [{"text": p} for p in expected], name="text_only.json")
    lines = tmp_path / "prompts.txt"
    lines.write_text("Tell me a joke.\n\n   \nWhat is RAFT?\n")
    records = jsonl([{"prompt": p, "response": "r"} for p in expected])
    gz = jsonl([{"prompt": p} for p in expected], name="p.jsonl.gz", compress=True)
    for path in (t2t, text_only, lines, records, gz):
        assert load_prompts(path) == expected, path


def test_prompts_from_a_datasets_directory(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    Dataset.from_dict({"prompt": ["a?", "b?"], "other": [1, 2]}).save_to_disk(tmp_path / "plain")
    DatasetDict({"train": Dataset.from_dict({"prompt": ["c?"]})}).save_to_disk(tmp_path / "dict")
    assert load_prompts(tmp_path / "plain") == ["a?", "b?"]
    assert load_prompts(tmp_path / "dict") == ["c?"]


def test_pairs_texts_and_sft_examples(tmp_path: Path, lmflow, jsonl) -> None:
    t2t = lmflow("text2text", [{"input": "Q:", "output": " A"}, {"input": "Q2:", "output": ""}])
    assert load_pairs(t2t) == [PromptResponse("Q:", " A"), PromptResponse("Q2:", "")]
    assert load_sft_examples(t2t) == load_pairs(t2t)
    assert load_pairs(jsonl([{"prompt": "p", "response": "r"}])) == [PromptResponse("p", "r")]

    text_only = lmflow("text_only", [{"text": "whole text"}], name="t.json")
    assert load_texts(text_only) == ["whole text"]
    # Plain texts train as responses to an empty prompt: the loss covers all of it.
    assert load_sft_examples(text_only) == [PromptResponse("", "whole text")]
    assert load_sft_examples(jsonl([{"text": "t1"}], name="texts.jsonl")) == [PromptResponse("", "t1")]


def test_preferences_full_texts_and_prompt_split(jsonl) -> None:
    full = jsonl([{"chosen": "H: hi A: hello", "rejected": "H: hi A: go away"}], name="a.jsonl")
    assert load_preferences(full) == [PreferencePair("H: hi A: hello", "H: hi A: go away")]
    split = jsonl([{"prompt": "H: hi A:", "chosen": " hello", "rejected": " go away"}], name="b.jsonl")
    assert load_preferences(split) == [PreferencePair(" hello", " go away", "H: hi A:")]
    hh = "\n\nHuman: hi\n\nAssistant:"
    dialogues = jsonl([{"chosen": hh + " hello", "rejected": hh + " go away"}], name="c.jsonl")
    assert load_preferences(dialogues) == [PreferencePair("hello", "go away", hh)]
    other_prompts = jsonl(
        [{"chosen": hh + " hello", "rejected": "\n\nHuman: yo\n\nAssistant: x"}], name="d.jsonl"
    )
    assert load_preferences(other_prompts)[0].prompt is None  # not one prompt: kept whole


def test_prompts_from_messages_records(jsonl) -> None:
    path = jsonl(
        [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}],
        name="m.jsonl",
    )
    assert load_prompts(path) == ["\n\nSystem: Be brief.\n\nHuman: Hi\n\nAssistant:"]
    bad = jsonl([{"messages": [{"role": "robot", "content": "x"}]}], name="bad.jsonl")
    with pytest.raises(DataError, match="record 0.*messages.0.role"):
        load_prompts(bad)


def test_json_list_and_jsonl_saved_as_json(tmp_path: Path) -> None:
    listed = tmp_path / "list.json"
    listed.write_text('[{"prompt": "a"}, {"prompt": "b"}]')
    assert load_prompts(listed) == ["a", "b"]
    lines = tmp_path / "lines.json"
    lines.write_text('{"prompt": "a"}\n{"prompt": "b"}\n')
    assert load_prompts(lines) == ["a", "b"]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [{"prompt": "ok", "response": "r"}, {"prompt": "p"}],
            "record 1 (line 2): missing field 'response' (fields present: 'prompt')",
        ),
        ([{"prompt": 3, "response": "r"}], "record 0 (line 1): field 'prompt' must be a string, got int"),
        ([{"prompt": "  ", "response": "r"}], "record 0 (line 1): field 'prompt' is empty"),
        (["just a string"], "record 0 (line 1): expected an object, got str"),
    ],
)
def test_bad_records_name_file_record_and_field(jsonl, rows, message) -> None:
    path = jsonl(rows)
    with pytest.raises(DataError) as info:
        load_pairs(path)
    assert str(info.value).startswith(f"{path}: {message}")


def test_file_level_errors(tmp_path: Path, lmflow, jsonl) -> None:
    cases = {
        tmp_path / "missing.jsonl": "no such file or directory",
        jsonl([], name="empty.jsonl"): "no records (empty dataset)",
        lmflow("text2text", [], name="empty.json"): "no records (empty dataset)",
        lmflow(
            "conversation", [{"messages": []}], name="conv.json"
        ): "LMFlow type 'conversation' is not supported",
        tmp_path / "data.csv": "unsupported file type",
    }
    (tmp_path / "data.csv").write_text("prompt\nx\n")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"prompt": "a"}\n{"prompt": \n')
    cases[broken] = "record 1 (line 2): invalid JSON"
    not_gzip = tmp_path / "fake.jsonl.gz"
    not_gzip.write_text("plain")
    cases[not_gzip] = "unreadable"
    for path, message in cases.items():
        with pytest.raises(DataError, match=str(path)) as info:
            load_prompts(path)
        assert message in str(info.value), (path, str(info.value))


def test_wrong_kind_of_data_is_named(lmflow, jsonl) -> None:
    with pytest.raises(DataError, match="this is LMFlow text_only"):
        load_pairs(lmflow("text_only", [{"text": "t"}]))
    with pytest.raises(DataError, match="this is LMFlow text2text"):
        load_texts(lmflow("text2text", [{"input": "i", "output": "o"}], name="t2t.json"))
    with pytest.raises(DataError, match="record 0 \\(line 1\\): missing field 'chosen'"):
        load_preferences(jsonl([{"prompt": "p", "response": "r"}]))
