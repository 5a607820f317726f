import av
import numpy as np
import pytest

from matr.data.own_videos import read_own_videos
from matr.data.records import AnnotationError, evaluation_inputs

DURATIONS = {"query.mp4": 12.0, "clips/target.mp4": 60.0, "clips/other.mov": 30.0, "clips/query.mov": 5.0}


def _folder(tmp_path, rows, header="query,target,gt_start,gt_end,query_start,query_end"):
    for name in DURATIONS:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "pairs.csv").write_text(header + "\n" + "".join(row + "\n" for row in rows))
    return tmp_path / "pairs.csv"


@pytest.fixture
def probe(tmp_path):
    return lambda path: DURATIONS[path.relative_to(tmp_path).as_posix()]


def test_rows_become_pairs_with_file_stems_as_ids(tmp_path, probe):
    csv = _folder(tmp_path, ["query.mp4,clips/target.mp4,20,31.5,2,8", "query.mp4,clips/other.mov,,,,"])
    own = read_own_videos(csv, probe=probe)
    clip, whole = own.records
    assert clip.pair_id == "query[2,8]->target" and clip.query_window == (2.0, 8.0)
    assert clip.windows == ((20.0, 31.5),) and clip.duration == 60.0 and clip.target_window is None
    assert whole.pair_id == "query->other" and whole.windows == () and whole.query_window is None
    assert own.paths == {
        "query": tmp_path / "query.mp4",
        "target": tmp_path / "clips/target.mp4",
        "other": tmp_path / "clips/other.mov",
    }


def test_optional_columns_may_be_absent(tmp_path, probe):
    csv = _folder(tmp_path, ["query.mp4,clips/target.mp4"], header="query,target")
    assert read_own_videos(csv, probe=probe).records[0].windows == ()


def test_missing_file_names_the_row(tmp_path, probe):
    csv = _folder(tmp_path, ["query.mp4,clips/target.mp4,1,2,,", "query.mp4,clips/absent.mp4,1,2,,"])
    with pytest.raises(AnnotationError, match=r"pairs\.csv, line 3: video file 'clips/absent\.mp4' not found"):
        read_own_videos(csv, probe=probe)


@pytest.mark.parametrize(
    "row, message",
    [
        ("query.mp4,clips/target.mp4,20,,,", "give both gt_start and gt_end, or neither"),
        ("query.mp4,clips/target.mp4,20,x,,", "gt_start/gt_end must be numbers"),
        ("query.mp4,clips/target.mp4,20,75,,", "ground truth end 75 s is beyond the duration 60 s"),
        ("query.mp4,clips/target.mp4,,,8,2", "query window end 2 is before its start 8"),
        ("query.mp4,clips/target.mp4,,,,", "pair 'query->target' repeats line 2"),
        ("query.mp4,clips/query.mov,,,,", "'clips/query.mov' and .*query.mp4 share the file stem 'query'"),
        (",clips/target.mp4,,,,", "empty video path"),
    ],
)
def test_bad_rows_name_the_line(tmp_path, probe, row, message):
    csv = _folder(tmp_path, ["query.mp4,clips/target.mp4,,,,", row])
    with pytest.raises(AnnotationError, match=rf"pairs\.csv, line 3: {message}"):
        read_own_videos(csv, probe=probe)


def test_missing_required_column_is_named(tmp_path, probe):
    csv = _folder(tmp_path, ["query.mp4"], header="query")
    with pytest.raises(AnnotationError, match=r"line 1: missing columns \['target'\]"):
        read_own_videos(csv, probe=probe)


def test_default_probe_reads_the_real_duration(tmp_path):
    path = tmp_path / "tiny.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for _ in range(25):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    (tmp_path / "pairs.csv").write_text("query,target,gt_start,gt_end\ntiny.mp4,tiny.mp4,0.5,2\n")
    record = read_own_videos(tmp_path / "pairs.csv").records[0]
    assert record.duration == pytest.approx(2.5)


def test_a_header_only_csv_names_the_file_and_line(tmp_path, probe):
    with pytest.raises(AnnotationError, match=r"pairs\.csv, line 1: the CSV has a header but no rows"):
        read_own_videos(_folder(tmp_path, []), probe=probe)


def test_a_zero_length_ground_truth_window_names_the_line(tmp_path, probe):
    csv = _folder(tmp_path, ["query.mp4,clips/target.mp4,20,31.5,,", "query.mp4,clips/other.mov,4,4,,"])
    with pytest.raises(AnnotationError, match=r"pairs\.csv, line 3: a ground-truth window must have positive length"):
        read_own_videos(csv, probe=probe)


def test_evaluating_a_csv_without_ground_truth_columns_asks_for_them(tmp_path, probe):
    csv = _folder(tmp_path, ["query.mp4,clips/target.mp4"], header="query,target")
    records = read_own_videos(csv, probe=probe).records
    with pytest.raises(AnnotationError, match=r"pairs\.csv: evaluation needs .*gt_start and gt_end"):
        evaluation_inputs(records, str(csv))


def test_a_stored_video_shorter_than_the_query_clip_names_the_line(tmp_path, probe):
    csv = _folder(tmp_path, ["query.mp4,clips/target.mp4,20,31.5,2,8"])
    with pytest.raises(AnnotationError, match=r"pairs\.csv, line 2: query_window of video 'query' ends at 8 s"):
        read_own_videos(csv, probe=probe, store_durations={"query": 6.0})
