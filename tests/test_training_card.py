"""The model card writer replaces only its generated block and keeps everyone else's text."""

from edgemask.training.card import BEGIN, END, HEADING, short_name, write_section


def test_card_section_is_created_then_replaced_in_place(tmp_path):
    readme = tmp_path / "README.md"
    write_section(readme, "first body")
    text = readme.read_text()
    assert text.startswith("# Models\n") and HEADING in text and "first body" in text
    # Someone appends notes inside the section and an export section after it.
    readme.write_text(text + "\nhand-written note\n\n## Export\n\nexport table\n")
    write_section(readme, "second body")
    text = readme.read_text()
    assert "first body" not in text and "second body" in text
    assert "hand-written note" in text and text.index("## Export") > text.index(END)
    assert text.count(BEGIN) == 1 and text.count(HEADING) == 1


def test_existing_heading_without_markers_gets_the_block_under_it(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Models\n\n## Export\n\nx\n\n## Classifier\n\nold notes\n")
    write_section(readme, "body")
    text = readme.read_text()
    assert text.index(HEADING) < text.index("body") < text.index("old notes")
    assert text.index("## Export") < text.index(HEADING)


def test_short_names_drop_machine_paths():
    assert short_name("/x/shared/assets/datasets/mask12k/test") == "mask12k/test"
    assert short_name("/x/datasets/scenes_dev (VOC crops)") == "scenes_dev (VOC crops)"
    assert short_name("val") == "val"
