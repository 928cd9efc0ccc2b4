"""MovieLens sources and the in-memory event plan: no database needed."""

import hashlib
import threading
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from telemetry.seed import sources
from telemetry.seed.events import ANOMALY_FACTOR, event_uuid, movielens_events_build, org_index
from telemetry.seed.sources import SourceUnavailable, file_load, hub_load, movielens_load
from telemetry.seed.synthetic import synthetic_movielens


@pytest.fixture(scope="module")
def synthetic():
    return synthetic_movielens(seed=42)


# --- the synthetic generator ----------------------------------------------------------------


def test_synthetic_has_movielens_columns_and_shape(synthetic):
    ratings = synthetic.ratings
    assert list(ratings.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert all(str(t) == "int64" for t in ratings.dtypes)
    assert len(ratings) == 100_000
    assert ratings["user_id"].nunique() == 943
    assert ratings["item_id"].nunique() == 1682
    assert ratings["item_id"].between(1, 1682).all()
    assert not ratings.duplicated(["user_id", "item_id"]).any()  # one rating per (user, item)
    assert ratings.groupby("user_id").size().min() >= 20


def test_synthetic_distributions_match_movielens(synthetic):
    ratings = synthetic.ratings
    shares = ratings["rating"].value_counts(normalize=True).sort_index()
    assert list(shares.index) == [1, 2, 3, 4, 5]
    for rating, expected in zip(range(1, 6), (0.061, 0.114, 0.271, 0.342, 0.212), strict=True):
        assert abs(shares[rating] - expected) < 0.01
    per_user = ratings.groupby("user_id").size()
    assert 50 <= per_user.median() <= 80 and per_user.max() > 400  # a long tail, like the real data
    start, end = (datetime.fromtimestamp(t, UTC) for t in (ratings["timestamp"].min(), ratings["timestamp"].max()))
    assert datetime(1997, 9, 19, tzinfo=UTC) <= start < datetime(1997, 10, 1, tzinfo=UTC)
    assert datetime(1998, 4, 1, tzinfo=UTC) < end <= datetime(1998, 4, 23, tzinfo=UTC)
    users = synthetic.users
    assert len(users) == 943 and users["age"].between(7, 73).all()
    assert 30 <= users["age"].mean() <= 38
    assert abs((users["gender"] == "M").mean() - 0.71) < 0.01


def test_synthetic_is_deterministic_per_seed(synthetic):
    assert synthetic_movielens(seed=42).ratings.equals(synthetic.ratings)
    assert not synthetic_movielens(seed=7).ratings.equals(synthetic.ratings)


# --- local files -----------------------------------------------------------------------------


def _write_ml100k(folder, rows=((196, 242, 3, 881250949), (186, 302, 3, 891717742), (22, 377, 1, 878887116))):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows))
    (folder / "u.user").write_text("196|49|M|writer|55105\n186|39|F|executive|00000\n22|25|M|writer|40206\n")
    (folder / "u.item").write_text(
        "242|Kolya (1996)|24-Jan-1997||http://x|0\n302|L.A. Confidential (1997)|01-Jan-1997||http://x|0\n"
    )
    return folder / "u.data"


def test_file_load_reads_u_data_with_its_user_and_item_files(tmp_path):
    data = file_load(_write_ml100k(tmp_path / "ml-100k"))
    assert data.source == "file"
    assert data.ratings.to_dict("records")[0] == {"user_id": 196, "item_id": 242, "rating": 3, "timestamp": 881250949}
    assert len(data.ratings) == 3
    user = data.users.set_index("user_id").loc[186]
    assert (user["age"], user["gender"], user["occupation"]) == (39, "F", "executive")
    assert dict(zip(data.items["item_id"], data.items["title"], strict=True))[242] == "Kolya (1996)"


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_titles_keep_their_accents_in_either_encoding(tmp_path, encoding):
    """GroupLens' u.item is latin-1, recbole's copy UTF-8: "Véronique" either way (read
    as latin-1, the UTF-8 copy showed "VÃ©ronique" on the demo's pages)."""
    data_file = _write_ml100k(tmp_path / "ml-100k")
    (tmp_path / "ml-100k" / "u.item").write_bytes(
        "242|Double vie de Véronique, La (1991)|01-Jan-1991||http://x|0\n".encode(encoding)
    )
    items = file_load(data_file).items
    assert dict(zip(items["item_id"], items["title"], strict=True))[242] == "Double vie de Véronique, La (1991)"


def test_file_load_accepts_a_folder(tmp_path):
    _write_ml100k(tmp_path / "ml-100k")
    assert len(file_load(tmp_path / "ml-100k").ratings) == 3


def test_file_load_reads_csv_with_movielens_aliases_and_parquet(tmp_path):
    frame = pd.DataFrame(
        {"userId": [1, 2], "movieId": [10, 20], "rating": [4.5, 2.0], "timestamp": [964982703, 964981247]}
    )
    frame.to_csv(tmp_path / "ratings.csv", index=False)
    data = file_load(tmp_path / "ratings.csv")
    assert data.ratings.to_dict("records") == [
        {"user_id": 1, "item_id": 10, "rating": 4, "timestamp": 964982703},  # half stars round to even
        {"user_id": 2, "item_id": 20, "rating": 2, "timestamp": 964981247},
    ]
    hf_like = pd.DataFrame(
        {
            "user_id": [b"7"],
            "movie_id": [b"50"],
            "user_rating": [5.0],
            "timestamp": [881250949],
            "raw_user_age": [30.0],
            "user_gender": [False],
            "movie_title": [b"Star Wars (1977)"],
        }
    )
    hf_like.to_parquet(tmp_path / "ml.parquet")
    data = file_load(tmp_path / "ml.parquet")
    assert data.ratings.to_dict("records") == [{"user_id": 7, "item_id": 50, "rating": 5, "timestamp": 881250949}]
    assert data.users.iloc[0][["age", "gender"]].tolist() == [30.0, "F"]
    assert data.items.iloc[0]["title"] == "Star Wars (1977)"


def test_file_load_rejects_missing_or_unreadable_files(tmp_path):
    with pytest.raises(SourceUnavailable):
        file_load(tmp_path / "nope.csv")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SourceUnavailable, match="no user_id"):
        file_load(tmp_path / "bad.csv")


# --- the hub and the fallback chain -------------------------------------------------------


@pytest.fixture
def no_local_copies(monkeypatch, tmp_path, settings):
    settings.MOVIELENS_PATH = ""
    monkeypatch.setattr(sources, "LOCAL_DEFAULT_DIR", tmp_path / "absent")

    def not_installed():
        raise SourceUnavailable("the recbole package is not installed")

    monkeypatch.setattr(sources, "recbole_load", not_installed)


def test_offline_hub_fails_fast_and_says_so_in_one_line(no_local_copies, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    lines = []
    started = time.monotonic()
    data = movielens_load(source="hf", split="train", say=lines.append)
    assert time.monotonic() - started < 20
    assert data.source == "synthetic"
    assert len(lines) == 1
    assert "Hugging Face hub is" in lines[0] and "synthetic" in lines[0]
    assert "\n" not in lines[0]


@pytest.mark.parametrize(
    ("reason", "said"),
    [
        # The hub library offline (HF_HUB_OFFLINE, as `make demo` runs): skipped on purpose,
        # with the way to try it, not the hub being down.
        (
            "ConnectionError: Couldn't reach 'x' on the Hub (OfflineModeIsEnabled)",
            "the Hugging Face hub is skipped (HF_HUB_OFFLINE=1; HF_HUB_OFFLINE=0 tries it)",
        ),
        ("no answer within 0.2 s", "the Hugging Face hub is unreachable (no answer within 0.2 s)"),
    ],
    ids=["offline", "unreachable"],
)
def test_the_hub_left_says_why_in_one_line(no_local_copies, monkeypatch, reason, said):
    def unavailable(**_):
        raise SourceUnavailable(reason)

    monkeypatch.setattr(sources, "hub_load", unavailable)
    lines = []
    assert movielens_load(source="hf", split="train", say=lines.append).source == "synthetic"
    assert lines == [f"MovieLens: {said}; using the synthetic MovieLens-shaped generator."]


def test_hub_load_is_bounded_in_time(monkeypatch):
    import datasets

    release = threading.Event()
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: release.wait(5))
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match="no answer within 0.2 s"):
        hub_load(split="train", timeout=0.2)
    assert time.monotonic() - started < 2
    release.set()


def test_hub_load_normalises_the_hub_columns(monkeypatch):
    import datasets

    frame = pd.DataFrame({"user_id": ["3"], "movie_id": ["9"], "user_rating": [2.0], "timestamp": [881250949]})

    class FakeDataset:
        def to_pandas(self):
            return frame

    monkeypatch.setattr(datasets, "load_dataset", lambda name, split: FakeDataset())
    data = hub_load(split="train", timeout=5)
    assert data.source == "hf"
    assert data.ratings.to_dict("records") == [{"user_id": 3, "item_id": 9, "rating": 2, "timestamp": 881250949}]


def test_offline_falls_back_to_the_local_copy_first(no_local_copies, monkeypatch, tmp_path, settings):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings.MOVIELENS_PATH = str(_write_ml100k(tmp_path / "copy"))
    lines = []
    data = movielens_load(source="hf", say=lines.append)
    assert data.source == "file" and len(data.ratings) == 3
    assert len(lines) == 1 and "local copy" in lines[0]


def test_offline_falls_back_to_the_recbole_wheel(monkeypatch, tmp_path, settings):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings.MOVIELENS_PATH = ""
    monkeypatch.setattr(sources, "LOCAL_DEFAULT_DIR", tmp_path / "absent")
    folder = tmp_path / "recbole" / "dataset_example" / "ml-100k"
    folder.mkdir(parents=True)
    (folder / "ml-100k.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n196\t242\t3\t881250949\n"
    )
    (folder / "ml-100k.user").write_text(
        "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n196\t49\tM\twriter\t55105\n"
    )
    monkeypatch.setattr(sources, "recbole_dir", lambda: folder)
    lines = []
    data = movielens_load(source="hf", say=lines.append)
    assert data.source == "recbole"
    assert data.ratings.to_dict("records") == [{"user_id": 196, "item_id": 242, "rating": 3, "timestamp": 881250949}]
    assert data.users.iloc[0][["age", "gender"]].tolist() == [49, "M"]
    assert "recbole" in lines[0]


def test_another_split_needs_the_hub(no_local_copies, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SourceUnavailable, match="'test' split"):
        movielens_load(source="hf", split="test", say=lambda line: None)


# --- the event plan --------------------------------------------------------------------------


def test_plan_columns_durations_and_org_split(synthetic):
    plan = movielens_events_build(synthetic.ratings, orgs=3, limit=5000, anomalies=False)
    events = plan.events
    assert len(events) == 5000
    for row in events.head(200).itertuples():
        assert row.org == int(hashlib.sha256(str(row.user_id).encode()).hexdigest(), 16) % 3
        assert row.uuid == str(event_uuid(row.user_id, row.item_id, row.original_ts))
        assert max(1.0, row.rating * 60 - 15) <= row.session_duration <= row.rating * 60 + 30
    assert events.groupby("user_id")["org"].nunique().max() == 1  # a user lives in one organisation
    assert set(events["org"]) == {0, 1, 2}
    assert (events["timestamp"] == events["original_ts"]).all()  # no --recent-days: real times
    assert not events["injected"].any()


def test_plan_limit_is_a_stable_sample(synthetic):
    small = movielens_events_build(synthetic.ratings, orgs=3, limit=300).events
    large = movielens_events_build(synthetic.ratings, orgs=3, limit=1000).events
    assert set(small["uuid"]) <= set(large["uuid"])
    assert small["user_id"].nunique() > 150  # spread over users, not the first few of the file


def test_plan_injects_two_percent_tripled_in_feature_day_cells(synthetic):
    plain = movielens_events_build(synthetic.ratings, orgs=2, limit=20_000, anomalies=False).events
    spiked = movielens_events_build(synthetic.ratings, orgs=2, limit=20_000, anomalies=True).events
    injected = spiked["injected"].to_numpy()
    assert injected.sum() == 400  # exactly 2 %
    assert np.allclose(
        spiked["session_duration"].to_numpy()[injected],
        np.round(plain["session_duration"].to_numpy()[injected] * ANOMALY_FACTOR, 3),
    )
    assert np.array_equal(spiked["session_duration"][~injected], plain["session_duration"][~injected])
    cells = spiked[injected].groupby(["org", "item_id", spiked["timestamp"] // 86_400]).size()
    assert cells.max() > 1  # whole (feature, day) cells, not isolated events


def test_plan_recent_days_maps_into_the_last_n_days(synthetic):
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    events = movielens_events_build(synthetic.ratings, orgs=3, limit=3000, recent_days=30, now=now).events
    low, high = events["timestamp"].min(), events["timestamp"].max()
    assert (now - timedelta(days=30)).timestamp() < low < (now - timedelta(days=29)).timestamp()
    assert (now - timedelta(hours=1)).timestamp() < high <= now.timestamp()
    assert events.sort_values("original_ts")["timestamp"].is_monotonic_increasing  # order is kept
    # The uuid ignores the shift, so a later re-seed recognises the same events.
    again = movielens_events_build(synthetic.ratings, orgs=3, limit=3000, recent_days=7).events
    assert again["uuid"].tolist() == events["uuid"].tolist()


def test_org_index_is_stable():
    assert [org_index(u, 3) for u in (1, 2, 3, 196)] == [
        int(hashlib.sha256(str(u).encode()).hexdigest(), 16) % 3 for u in (1, 2, 3, 196)
    ]


def test_the_recbole_wheel_unpacked_under_var_comes_first(monkeypatch, tmp_path):
    """`make demo` unpacks the wheel into var/recbole (not the virtualenv): read from there,
    without the package being importable."""
    folder = tmp_path / "recbole" / "dataset_example" / "ml-100k"
    folder.mkdir(parents=True)
    (folder / "ml-100k.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
    monkeypatch.setattr(sources, "RECBOLE_TARGET", tmp_path)
    assert sources.recbole_dir() == folder
