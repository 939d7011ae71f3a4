"""Tests for matcher.inputs.listings: folders and manifests as scan inputs."""
import errno
import json
import os

import pytest

from matcher.errors import ListingsError
from matcher.inputs.listings import MAX_LINE_BYTES, WalkReport, iter_listings, manifest_columns, walk_report
from tests.badimages import fail_if_blocked


def touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def keys(source):
    return [item.listing for item in iter_listings(source)]


def test_folder_recursion_mixed_case_sorted(tmp_path):
    for name in ["b.JPG", "a.png", "sub/deep/c.Jpeg", "sub/a.WEBP", "z.tiff", "sub/x.gif"]:
        touch(tmp_path / name)
    for name in ["notes.txt", "sub/readme.md", "image.jpg.bak", ".hidden.jpg", ".git/d.jpg", "sub/.cache/e.png"]:
        touch(tmp_path / name)
    items = list(iter_listings(tmp_path))
    assert [i.listing for i in items] == [
        "a.png", "b.JPG", "sub/a.WEBP", "sub/deep/c.Jpeg", "sub/x.gif", "z.tiff",
    ]
    assert [i.position for i in items] == list(range(6))
    assert all(i.path.is_absolute() and i.path.is_file() for i in items)
    assert all(dict(i.fields) == {} for i in items)
    assert keys(tmp_path) == keys(str(tmp_path))  # stable


def test_empty_folder_yields_nothing(tmp_path):
    touch(tmp_path / "readme.txt")
    assert keys(tmp_path) == []


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_symlink_loop_walked_once(tmp_path):
    touch(tmp_path / "a" / "x.jpg")
    os.symlink(tmp_path / "a", tmp_path / "a" / "loop")
    os.symlink(tmp_path / "a", tmp_path / "b")
    assert keys(tmp_path) == ["a/x.jpg"]


def test_txt_manifest(tmp_path):
    touch(tmp_path / "imgs" / "one.jpg")
    abs_img = touch(tmp_path / "elsewhere" / "two.png")
    (tmp_path / "list.txt").write_text(f"# comment\n\nimgs/one.jpg\n  {abs_img}  \nmissing.jpg\n")
    items = list(iter_listings(tmp_path / "list.txt"))
    assert [i.listing for i in items] == ["imgs/one.jpg", str(abs_img), "missing.jpg"]
    assert items[0].path == (tmp_path / "imgs" / "one.jpg").resolve()
    assert items[1].path == abs_img.resolve()
    assert items[2].path == (tmp_path / "missing.jpg").resolve()  # not an error here
    assert [i.position for i in items] == [0, 1, 2]
    assert manifest_columns(tmp_path / "list.txt") == []


def test_relative_paths_resolve_against_manifest_folder(tmp_path, monkeypatch):
    touch(tmp_path / "m" / "pics" / "a.jpg")
    (tmp_path / "m" / "list.txt").write_text("pics/a.jpg\n../m/pics/a.jpg\n")
    monkeypatch.chdir(tmp_path)
    items = list(iter_listings("m/list.txt"))
    assert items[0].path == items[1].path == (tmp_path / "m" / "pics" / "a.jpg").resolve()
    assert [i.listing for i in items] == ["pics/a.jpg", "../m/pics/a.jpg"]


def test_csv_manifest_fields_and_duplicates(tmp_path):
    manifest = tmp_path / "listings.csv"
    manifest.write_text(
        'listing_id,path,title,price\n'
        '17,a.jpg,"Watch, ""gold"" edition",99.5\n'
        '18,a.jpg,"two\nlines",\n'
        '\n'
        '19,/abs/b.png,plain,1\n',
        encoding="utf-8",
    )
    items = list(iter_listings(manifest))
    assert [i.listing for i in items] == ["a.jpg", "a.jpg", "/abs/b.png"]
    assert [i.position for i in items] == [0, 1, 2]
    assert dict(items[0].fields) == {"listing_id": "17", "title": 'Watch, "gold" edition', "price": "99.5"}
    assert items[1].fields["title"] == "two\nlines"
    assert items[2].path == (tmp_path / "/abs/b.png").resolve()
    assert manifest_columns(manifest) == ["listing_id", "title", "price"]


def test_csv_with_bom(tmp_path):
    manifest = tmp_path / "l.csv"
    manifest.write_bytes("\ufeffpath,title\na.jpg,Ünïcode\n".encode("utf-8"))
    items = list(iter_listings(manifest))
    assert items[0].listing == "a.jpg" and items[0].fields["title"] == "Ünïcode"


def test_csv_without_path_column_names_file_and_columns(tmp_path):
    manifest = tmp_path / "bad.csv"
    manifest.write_text("id,image,title\n1,a.jpg,x\n")
    with pytest.raises(ListingsError) as err:
        list(iter_listings(manifest))
    msg = str(err.value)
    assert str(manifest) in msg and ":1:" in msg and "'image'" in msg and "'title'" in msg
    assert "\n" not in msg
    with pytest.raises(ListingsError):
        manifest_columns(manifest)


def test_csv_empty_path_names_line_and_column(tmp_path):
    manifest = tmp_path / "l.csv"
    manifest.write_text("id,path\n1,a.jpg\n2,\n")
    with pytest.raises(ListingsError, match=r"l\.csv:3:2: empty 'path'"):
        list(iter_listings(manifest))


def test_jsonl_manifest_fields(tmp_path):
    manifest = tmp_path / "l.jsonl"
    lines = [
        {"path": "a.jpg", "listing_id": "A1", "price": 12.5},
        {"title": "t", "path": "sub/b.png", "qty": 3, "ok": True, "tags": ["x"], "none": None},
    ]
    manifest.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    items = list(iter_listings(manifest))
    assert [i.listing for i in items] == ["a.jpg", "sub/b.png"]
    assert dict(items[0].fields) == {"listing_id": "A1", "price": "12.5"}
    assert dict(items[1].fields) == {"title": "t", "qty": "3", "ok": "true", "tags": '["x"]', "none": ""}
    assert items[1].path == (tmp_path / "sub" / "b.png").resolve()
    assert manifest_columns(manifest) == ["listing_id", "price", "title", "qty", "ok", "tags", "none"]


@pytest.mark.parametrize(
    "bad_line, expected",
    [
        ('["a.jpg"]', r"l\.jsonl:2:1: line is not a JSON object \(got array\)"),
        ('{"path": "a.jpg",', r"l\.jsonl:2:\d+: invalid JSON"),
        ('{"title": "x"}', r"l\.jsonl:2:1: .*no \"path\" key"),
        ('{"path": ""}', r"l\.jsonl:2:1: empty \"path\""),
        ('{"path": 5}', r"l\.jsonl:2:1: \"path\" must be a string"),
    ],
)
def test_jsonl_bad_line_names_file_and_line(tmp_path, bad_line, expected):
    manifest = tmp_path / "l.jsonl"
    manifest.write_text('{"path": "ok.jpg"}\n' + bad_line + "\n")
    with pytest.raises(ListingsError, match=expected) as err:
        list(iter_listings(manifest))
    assert str(manifest) in str(err.value)


def test_missing_source_and_bad_suffix_raise_at_call(tmp_path):
    with pytest.raises(ListingsError, match="no such"):
        iter_listings(tmp_path / "nope")
    img = touch(tmp_path / "a.jpg")
    with pytest.raises(ListingsError, match=r"\.txt, \.csv, \.jsonl"):
        iter_listings(img)


def test_invalid_utf8_names_line(tmp_path):
    manifest = tmp_path / "l.txt"
    manifest.write_bytes(b"a.jpg\nb\xff.jpg\n")
    with pytest.raises(ListingsError, match=r"l\.txt:2:2: not valid UTF-8"):
        list(iter_listings(manifest))


# --- nothing lost, nothing read without bound (issue #30) ---------------------------------


def test_folder_entries_named_like_images_are_listings_whatever_they_are(tmp_path):
    touch(tmp_path / "a.jpg")
    os.mkfifo(tmp_path / "pipe.jpg")
    os.symlink(tmp_path / "gone.png", tmp_path / "dangling.png")
    os.symlink("loop2.jpg", tmp_path / "loop1.jpg")
    os.symlink("loop1.jpg", tmp_path / "loop2.jpg")
    os.symlink("loop_dir2", tmp_path / "loop_dir1")  # a loop not named like an image: counted
    os.symlink("loop_dir1", tmp_path / "loop_dir2")
    touch(tmp_path / "notes.txt")
    touch(tmp_path / ".hidden.jpg")
    touch(tmp_path / ".cache" / "b.jpg")
    touch(tmp_path / "sub" / "c.png")
    os.symlink(tmp_path / "sub", tmp_path / "sub_again")
    report = WalkReport()
    assert keys_of(iter_listings(tmp_path, skipped=report)) == [
        "a.jpg", "dangling.png", "loop1.jpg", "loop2.jpg", "pipe.jpg", "sub/c.png"]
    assert report == WalkReport(hidden=2, not_images=3, repeated_folders=1)
    assert report.line() == ("listings folder walk left out 3 names without an image suffix, 2 hidden entries, "
                             "1 link to a folder already walked")
    assert walk_report(tmp_path) == report


def keys_of(items):
    return [item.listing for item in items]


def test_nothing_left_out_is_an_empty_report(tmp_path):
    touch(tmp_path / "a.jpg")
    assert not walk_report(tmp_path) and walk_report(tmp_path).line() == ""
    (tmp_path / "l.txt").write_text("a.jpg\n")
    assert not walk_report(tmp_path / "l.txt")


def test_unreadable_sub_folder_is_counted(tmp_path, monkeypatch):
    touch(tmp_path / "a.jpg")
    touch(tmp_path / "locked" / "b.jpg")
    real_scandir = os.scandir

    def scandir(path):  # like chmod 0, which root would not feel
        if os.path.basename(path) == "locked":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    report = WalkReport()
    assert keys_of(iter_listings(tmp_path, skipped=report)) == ["a.jpg"]
    assert report.unreadable_folders == [f"locked: {os.strerror(errno.EACCES)}"]
    assert f"1 unreadable folder (locked: {os.strerror(errno.EACCES)})" in report.line()


def test_csv_unterminated_quote_is_an_error_at_the_quote(tmp_path):
    # leniently parsed, the quote swallows the rest of the file: 2 listings became 1, silently
    manifest = tmp_path / "l.csv"
    manifest.write_text('path,title\na.jpg,"unterminated title\nb.jpg,second\nc.jpg,third\n')
    with pytest.raises(ListingsError, match=r"l\.csv:2:7: bad CSV: this quote opens a field that is never closed"):
        list(iter_listings(manifest))


def test_csv_quote_spanning_lines_is_placed_where_it_opens(tmp_path):
    manifest = tmp_path / "l.csv"
    manifest.write_text('path,title\na.jpg,"two\nlines"\nb.jpg,x,"open\nmore\n')
    with pytest.raises(ListingsError, match=r"l\.csv:4:9: .*never closed"):
        list(iter_listings(manifest))


def test_csv_text_after_a_closing_quote_is_an_error_at_that_column(tmp_path):
    manifest = tmp_path / "l.csv"
    manifest.write_text('path,title\na.jpg,"closed"x\n')
    with pytest.raises(ListingsError, match=r'l\.csv:2:15: bad CSV: text after the closing quote'):
        list(iter_listings(manifest))


def test_csv_quotes_inside_unquoted_fields_stay_text(tmp_path):
    manifest = tmp_path / "l.csv"
    manifest.write_text('path,title\na.jpg,5" screen\n')
    assert [dict(i.fields) for i in iter_listings(manifest)] == [{"title": '5" screen'}]


@pytest.mark.parametrize("name, text", [
    ("l.txt", "a.jpg\nnul\0byte.jpg\nloop.jpg/x.jpg\nb.jpg\n"),
    ("l.csv", "path,title\na.jpg,x\nnul\0byte.jpg,y\nloop.jpg/x.jpg,z\nb.jpg,w\n"),
    ("l.jsonl", '{"path": "a.jpg"}\n{"path": "nul\\u0000byte.jpg"}\n{"path": "loop.jpg/x.jpg"}\n'
                '{"path": "b.jpg"}\n'),
    ("raw.jsonl", '{"path": "a.jpg"}\n{"path": "nul\0byte.jpg"}\n{"path": "loop.jpg/x.jpg"}\n{"path": "b.jpg"}\n'),
])
def test_impossible_manifest_paths_are_listings(tmp_path, name, text):
    # a NUL byte or a symlink loop is the listing's problem (a row), not the manifest's: the rest still scans
    os.symlink("loop.jpg", tmp_path / "loop.jpg")
    (tmp_path / name).write_text(text)
    items = list(iter_listings(tmp_path / name))
    assert keys_of(items) == ["a.jpg", "nul\0byte.jpg", "loop.jpg/x.jpg", "b.jpg"]
    assert items[1].path == tmp_path.resolve() / "nul\0byte.jpg"
    assert items[2].path == tmp_path.resolve() / "loop.jpg" / "x.jpg"
    assert [i.position for i in items] == [0, 1, 2, 3]


def test_a_fifo_manifest_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "l.txt")
    with fail_if_blocked(20, [tmp_path / "l.txt"]), \
            pytest.raises(ListingsError, match=r"l\.txt: cannot read manifest: not a regular file \(FIFO\)"):
        list(iter_listings(tmp_path / "l.txt"))


def test_an_overlong_manifest_line_is_refused(tmp_path):
    manifest = tmp_path / "l.txt"
    manifest.write_bytes(b"a.jpg\n" + b"x" * (MAX_LINE_BYTES + 1) + b"\n")
    with pytest.raises(ListingsError, match=r"l\.txt:2:1: line longer than"):
        list(iter_listings(manifest))
