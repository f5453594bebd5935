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


def test_scene_data_and_occluders_are_described_with_their_numbers():
    from edgemask.training.card import occluders_text, scenes_text

    info = {
        "folders": ["/x/datasets/scenes_train"],
        "detector": "face_detector_yunet_int8.tflite",
        "margin": 0.1,
        "incorrect": "skip",
        "train": {
            "scenes": 90,
            "detector": {"with_mask": 7, "without_mask": 5},
            "truth": {"with_mask": 9, "without_mask": 6},
            "under_16_px": 4,
        },
        "val": {"scenes": 10},
        "occluder_patches": 360,
    }
    text = scenes_text(info)
    assert "`scenes_train`" in text and "/x/" not in text
    assert "90 scenes train, 10 validate" in text
    assert "(7 with_mask / 5 without_mask)" in text and "(9 with_mask / 6 without_mask)" in text
    assert "4 of them under 16 px" in text and "faces: skip" in text and "360 background" in text
    assert occluders_text({"occlusion_prob": 0.0, "mask_hue_prob": 0.0}) == ""
    both = occluders_text({"occlusion_prob": 0.3, "occlusion_masked_prob": 0.1, "mask_hue_prob": 0.2})
    assert "bare faces p 0.3, masked faces p 0.1" in both and "p 0.2" in both
