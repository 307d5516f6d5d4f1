"""Tests of depthlite.imageio.inputs: files, folders, globs, stdin and their failures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from depthlite.errors import InputError, InputNotFoundError
from depthlite.imageio.inputs import InputItem, expand_inputs


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")  # contents do not matter: expansion never decodes


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """imgs/ with mixed-case extensions, a non-image, a dot-file and two levels of subfolders."""
    touch(
        tmp_path / "imgs",
        "b.png",
        "A.JPG",
        "c.webp",
        "d.TIFF",
        "notes.txt",
        "._a.jpg",
        "sub/e.jpeg",
        "sub/deeper/f.bmp",
        ".hidden/g.png",
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def relatives(items: list[InputItem]) -> list[str]:
    return [item.relative.as_posix() for item in items]


def test_single_file(tree: Path) -> None:
    items, errors = expand_inputs(["imgs/b.png"])
    assert errors == []
    assert items == [InputItem("imgs/b.png", Path("imgs/b.png"), "b", Path("b"))]


def test_folder_is_flat_sorted_and_filtered(tree: Path) -> None:
    items, errors = expand_inputs(["imgs"])
    assert errors == []
    assert [item.path for item in items] == [
        Path("imgs/A.JPG"),
        Path("imgs/b.png"),
        Path("imgs/c.webp"),
        Path("imgs/d.TIFF"),
    ]
    assert relatives(items) == ["A", "b", "c", "d"]


def test_folder_recursive_keeps_subfolders(tree: Path) -> None:
    items, errors = expand_inputs(["imgs"], recursive=True)
    assert errors == []
    assert relatives(items) == ["A", "b", "c", "d", "sub/deeper/f", "sub/e"]
    item = items[-1]
    assert item.path == Path("imgs/sub/e.jpeg")
    assert item.stem == "e"
    assert item.source == str(Path("imgs/sub/e.jpeg"))


def test_glob(tree: Path) -> None:
    items, errors = expand_inputs(["imgs/*.png", "imgs/?.JPG"])
    assert errors == []
    assert [item.path for item in items] == [Path("imgs/b.png"), Path("imgs/A.JPG")]


def test_glob_keeps_every_matching_file(tree: Path) -> None:
    """Like a shell, an explicit pattern is not filtered by extension (decode will judge)."""
    items, _ = expand_inputs(["imgs/n*"])
    assert [item.path for item in items] == [Path("imgs/notes.txt")]


def test_double_star_only_spans_folders_when_recursive(tree: Path) -> None:
    flat, _ = expand_inputs(["imgs/**/*.jpeg"])
    assert relatives(flat) == ["sub/e"]  # "**" acts as "*": exactly one level down
    deep, errors = expand_inputs(["imgs/**/*.bmp"], recursive=True)
    assert errors == []
    assert relatives(deep) == ["sub/deeper/f"]
    none, errors = expand_inputs(["imgs/**/*.bmp"])
    assert none == []
    assert isinstance(errors[0], InputNotFoundError)


def test_stdin() -> None:
    items, errors = expand_inputs(["-"])
    assert errors == []
    assert items == [InputItem("<stdin>", None, "stdin", Path("stdin"))]


def test_stdin_only_once(tree: Path) -> None:
    items, errors = expand_inputs(["-", "imgs/b.png", "-"])
    assert [item.stem for item in items] == ["stdin", "b"]
    assert len(errors) == 1
    assert type(errors[0]) is InputError
    assert "once" in str(errors[0])


def test_bad_specs_are_reported_not_raised(tree: Path) -> None:
    touch(tree, "empty/readme.md")
    items, errors = expand_inputs(["missing.jpg", "imgs/b.png", "nothing*.png", "empty"])
    assert [item.stem for item in items] == ["b"]
    assert [type(e) for e in errors] == [InputNotFoundError] * 3
    assert [e.source for e in errors] == ["missing.jpg", "nothing*.png", "empty"]
    assert "no such file" in str(errors[0])
    assert "match" in str(errors[1])
    assert ".jpg" in str(errors[2])


def test_duplicates_appear_once(tree: Path) -> None:
    items, errors = expand_inputs(["imgs/b.png", "imgs", "./imgs/b.png", str(tree / "imgs/b.png")])
    assert errors == []
    assert relatives(items) == ["b", "A", "c", "d"]


def test_same_stem_gets_distinct_outputs(tree: Path) -> None:
    touch(tree, "two/b.jpg", "three/b.jpg")
    items, errors = expand_inputs(["imgs/b.png", "two/b.jpg", "three/b.jpg"])
    assert errors == []
    assert relatives(items) == ["b", "b_jpg", "b_2"]
    assert [item.stem for item in items] == ["b", "b", "b"]  # the input's own stem, untouched


def test_outputs_next_to_inputs_only_clash_within_a_folder(tree: Path) -> None:
    touch(tree, "two/b.jpg", "two/b.bmp", "three/b.jpg")
    specs = ["imgs/b.png", "two/b.jpg", "three/b.jpg", "two/b.bmp"]
    items, errors = expand_inputs(specs, flat_output=False)
    assert errors == []
    assert relatives(items) == ["b", "b", "b", "b_bmp"]
    assert [item.stem for item in items] == ["b"] * 4
    written = [(item.path.parent / item.relative).as_posix() for item in items if item.path]
    assert len(set(written)) == len(written)


def test_outputs_next_to_inputs_drop_subfolders(tree: Path) -> None:
    touch(tree, "imgs/sub/A.png")
    items, errors = expand_inputs(["imgs"], recursive=True, flat_output=False)
    assert errors == []
    by_path = {item.path.as_posix(): item.relative.as_posix() for item in items if item.path}
    assert by_path["imgs/sub/e.jpeg"] == "e"
    assert by_path["imgs/sub/deeper/f.bmp"] == "f"
    assert by_path["imgs/A.JPG"] == "A"
    assert by_path["imgs/sub/A.png"] == "A"  # another folder: no clash, no rename
    # The flat layout would have kept both as-is too: they differ by subfolder.
    flat, _ = expand_inputs(["imgs"], recursive=True)
    assert "sub/A" in relatives(flat)


def test_case_only_clash_in_one_folder_is_renamed(tree: Path) -> None:
    touch(tree, "x/a.jpg", "x/A.png")
    items, _ = expand_inputs(["x/a.jpg", "x/A.png"], flat_output=False)
    assert relatives(items) == ["a", "A_png"]


@pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")
def test_symlink_outputs_clash_where_the_link_is(tree: Path) -> None:
    touch(tree, "elsewhere/b.jpg", "links/b.png")
    (tree / "links" / "b.jpg").symlink_to(tree / "elsewhere" / "b.jpg")
    items, _ = expand_inputs(["links/b.png", "links/b.jpg", "elsewhere/b.jpg"], flat_output=False)
    # elsewhere/b.jpg is the link's target: the same file, kept once.
    assert relatives(items) == ["b", "b_jpg"]


def test_stdin_next_to_a_file_of_the_working_folder(tree: Path) -> None:
    touch(tree, "stdin.png")
    items, _ = expand_inputs(["-", "stdin.png", "imgs/b.png"], flat_output=False)
    assert relatives(items) == ["stdin", "stdin_png", "b"]
    assert [item.stem for item in items] == ["stdin", "stdin", "b"]


def test_folder_skips_our_own_outputs(tree: Path, caplog: pytest.LogCaptureFixture) -> None:
    touch(
        tree / "imgs",
        "b_color.png",
        "b_depth16.png",
        "b_side.png",
        "sub/e_color.png",
        "b.npy",
        "b.pfm",
    )
    caplog.set_level("DEBUG", logger="depthlite.imageio.inputs")
    items, errors = expand_inputs(["imgs"], recursive=True)
    assert errors == []
    assert relatives(items) == ["A", "b", "c", "d", "sub/deeper/f", "sub/e"]
    items, errors = expand_inputs(["imgs"], recursive=True, flat_output=False)
    assert errors == []
    assert relatives(items) == ["A", "b", "c", "d", "f", "e"]  # no b_color, no b_color_color
    assert "4 named like depthlite outputs" in caplog.text


def test_explicit_files_and_globs_named_like_outputs_are_kept(tree: Path) -> None:
    touch(tree / "imgs", "b_color.png", "b_side.png")
    items, errors = expand_inputs(["imgs/b_color.png", "imgs/*_side.png"])
    assert errors == []
    assert relatives(items) == ["b_color", "b_side"]


def test_folder_of_only_outputs_is_empty(tree: Path) -> None:
    touch(tree, "done/a_color.png", "done/a_depth16.png")
    items, errors = expand_inputs(["done"])
    assert items == []
    assert [type(e) for e in errors] == [InputNotFoundError]


def test_literal_name_with_glob_characters(tree: Path) -> None:
    touch(tree, "shot[1].png")
    items, errors = expand_inputs(["shot[1].png"])
    assert errors == []
    assert items[0].path == Path("shot[1].png")


def test_absolute_glob_relative_to_its_base(tree: Path) -> None:
    items, errors = expand_inputs([str(tree / "imgs" / "*" / "*.jpeg")])
    assert errors == []
    assert relatives(items) == ["sub/e"]


def test_relative_defaults_to_stem() -> None:
    assert InputItem("x.png", Path("x.png"), "x").relative == Path("x")


def test_a_folder_says_how_many_files_it_skipped_and_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "shots"
    touch(folder, "a.jpg", "b.HEIC", "c.gif", "notes.txt", "d.xmp", "e.xmp", ".hidden.jpg")
    with caplog.at_level("WARNING", logger="depthlite.imageio.inputs"):
        items, errors = expand_inputs([str(folder)])
    assert errors == []
    assert sorted(item.stem for item in items) == ["a", "b", "c"]
    assert f"{folder}: skipped 4 file(s): 1 hidden; 3 other extensions (.txt, .xmp)" in (
        caplog.text
    )
