"""manage.py classify prints the API's result as JSON lines, for URLs and files alike."""

import json

import pytest
from django.core.management import CommandError, call_command


@pytest.mark.django_db
def test_classify_command_prints_one_json_line_per_argument(
    tmp_path, capsys, picture_server, allow_loopback, stock_red_jpeg, dealer_blue_jpeg
):
    path = tmp_path / "car.jpg"
    path.write_bytes(dealer_blue_jpeg)
    bad = tmp_path / "notes.txt"
    bad.write_text("not a picture")
    picture_server.serve("/a.jpg", stock_red_jpeg)
    call_command("classify", picture_server.url("/a.jpg"), str(path), "http://10.0.0.8/x.jpg", str(bad))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["url"], r["image_type"], r["color"], r["error"]) for r in lines] == [
        (picture_server.url("/a.jpg"), "Stock", "Red", None),
        (str(path), "Dealer", "Blue", None),
        ("http://10.0.0.8/x.jpg", "Placeholder", None, "blocked_address"),
        (str(bad), "Placeholder", None, "not_an_image"),
    ]
    assert set(lines[0]) == {"url", "sha256", "image_type", "color", "scores", "source", "cached", "model", "error"}
    call_command("classify", str(path))
    again = json.loads(capsys.readouterr().out)
    assert again["cached"] is True and again["sha256"] == lines[1]["sha256"]


@pytest.mark.django_db
def test_classify_command_refuses_what_is_neither_url_nor_file():
    with pytest.raises(CommandError, match="not a URL"):
        call_command("classify", "/no/such/file.jpg")
