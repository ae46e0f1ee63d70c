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
def test_classify_command_reports_each_bad_argument_as_a_json_error_line_and_goes_on(tmp_path, capsys, stock_red_jpeg):
    path = tmp_path / "car.jpg"
    path.write_bytes(stock_red_jpeg)
    data_url = "data:image/jpeg;base64,/9j/4AAQSkZJRg=="
    with pytest.raises(CommandError, match="3 of 4 arguments refused"):
        call_command("classify", data_url, str(path), "/no/such/file.jpg", str(tmp_path))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["url"], line["error"]) for line in lines] == [
        (data_url, "invalid_argument"),
        (str(path), None),
        ("/no/such/file.jpg", "invalid_argument"),
        (str(tmp_path), "invalid_argument"),
    ]
    assert lines[0]["message"].startswith("not a URL (scheme://…) nor a readable file")
    assert lines[1]["image_type"] == "Stock"
