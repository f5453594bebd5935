"""Output file names: any source name becomes one safe path component, keeping the letters of any script."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgemask.app.outfiles import MAX_NAME_BYTES, RESERVED_CHARS, inside, safe_name


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("../x.jpg", "x.jpg"),
        ("../../etc/passwd", "etc__passwd"),
        ("/abs/path/img.png", "abs__path__img.png"),
        ("..\\..\\win.jpg", "win.jpg"),
        ("sub/dir/a b#c.jpg", "sub__dir__a b#c.jpg"),
        (".hidden", "hidden"),
        ("..", "unnamed"),
        ("", "unnamed"),
        ("x\n../y", "x_..__y"),
        ("фото 1 ✓.jpg", "фото 1 ✓.jpg"),
        ("写真/顔.png", "写真__顔.png"),
        ('a:b*c?"d"<e>|f.jpg', "a_b_c_d_e_f.jpg"),
        ("tab\there\x00nul\u202eevil.jpg", "tab_here_nul_evil.jpg"),
        ("line\u2028break.jpg", "line_break.jpg"),
    ],
)
def test_safe_name(name: str, safe: str) -> None:
    assert safe_name(name) == safe


def test_a_long_name_is_cut_on_a_character_boundary() -> None:
    name = safe_name("ж" * 300 + ".jpg")
    assert name == "ж" * (MAX_NAME_BYTES // 2)


@given(st.text(max_size=300))
def test_any_name_becomes_one_safe_path_component(text: str) -> None:
    name = safe_name(text)
    assert name and not name.startswith(".") and name != ".."
    assert "/" not in name and "\\" not in name and not RESERVED_CHARS & set(name)
    assert all(unicodedata.category(c)[0] != "C" for c in name)
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES
    folder = Path("/out")
    assert inside(folder, name).parent == folder


@given(st.text(max_size=300))
def test_safe_name_is_idempotent(text: str) -> None:
    assert safe_name(safe_name(text)) == safe_name(text)


@given(st.text(st.characters(categories=("L", "N", "Zs")), min_size=1, max_size=60))
def test_letters_digits_and_spaces_of_any_script_are_kept(text: str) -> None:
    assert safe_name(text) == text.lstrip(".")


def test_a_kept_name_is_a_file_the_system_can_create(tmp_path: Path) -> None:
    path = tmp_path / safe_name("фото 1 ✓ 写真.jpg")
    path.write_bytes(b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["фото 1 ✓ 写真.jpg"]
