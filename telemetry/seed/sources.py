"""Where the MovieLens 100k ratings come from, in DESIGN's order of preference.

1. the Hugging Face hub (`datasets.load_dataset("DukeNLPGroup/movielens-100k")`), bounded
   in time because an unreachable hub otherwise retries for ~25 s;
2. a local file: `u.data` (TSV, no header), a CSV with a header, a parquet file, or a
   folder holding one of them (`u.user` / `ml-100k.user` and `u.item` beside it add age,
   gender and titles);
3. the copy of MovieLens 100k inside the `recbole` wheel when that package is installed
   (never a requirement: the GroupLens licence forbids redistributing the data);
4. the synthetic MovieLens-shaped generator (`telemetry.seed.synthetic`).

Every loader returns a `MovieLensData` (`telemetry.seed.dataset`).
"""

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from django.conf import settings

from .dataset import MovieLensData
from .synthetic import synthetic_movielens

HUB_DATASET = "DukeNLPGroup/movielens-100k"
HUB_TIMEOUT_SECONDS = 10.0
# `--source hf` also looks for a local copy (settings.MOVIELENS_PATH, else this folder)
# before the recbole wheel and the generator.
LOCAL_DEFAULT_DIR = Path(__file__).resolve().parents[2] / "var" / "movielens"
RECBOLE_DIR = ("dataset_example", "ml-100k")
# Where `make demo` unpacks the recbole wheel (`pip install --target`): beside the project,
# not in its virtualenv, whose dependency check would then report recbole's missing torch.
RECBOLE_TARGET = Path(__file__).resolve().parents[2] / "var" / "recbole"

RATING_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
# The names other MovieLens copies use for our columns (TFDS/HF, the GroupLens CSVs, recbole).
_ALIASES = {
    "user_id": ("user_id", "userid", "user", "user_id:token"),
    "item_id": ("item_id", "itemid", "movie_id", "movieid", "item", "movie", "item_id:token"),
    "rating": ("rating", "user_rating", "rating:float", "score"),
    "timestamp": ("timestamp", "time", "ts", "timestamp:float"),
    "age": ("age", "raw_user_age", "user_age", "age:token"),
    "gender": ("gender", "user_gender", "sex", "gender:token"),
    "occupation": ("occupation", "user_occupation_text", "occupation:token"),
    "zip_code": ("zip_code", "user_zip_code", "zip", "zip_code:token"),
    "title": ("title", "movie_title", "movie_title:token_seq"),
}


class SourceUnavailable(Exception):
    """This source cannot provide the data here (offline, not installed, unreadable)."""


# --- normalisation --------------------------------------------------------------------------


def _rename(frame: pd.DataFrame, wanted: list[str]) -> pd.DataFrame:
    by_lower = {str(c).strip().lower(): c for c in frame.columns}
    mapping = {}
    for column in wanted:
        for alias in _ALIASES[column]:
            if alias in by_lower:
                mapping[by_lower[alias]] = column
                break
    return frame.rename(columns=mapping)


def _as_int(series: pd.Series) -> pd.Series:
    if series.dtype == object:  # TFDS stores ids as bytes
        series = series.map(lambda v: v.decode() if isinstance(v, bytes) else v)
    return pd.to_numeric(series).astype("int64")


def _gender(value) -> str:
    # TFDS encodes gender as a bool, True meaning male.
    if isinstance(value, bool):
        return "M" if value else "F"
    if isinstance(value, bytes):
        value = value.decode()
    text = str(value).strip().upper()[:1]
    return text if text in ("M", "F") else ""


def ratings_normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """The four rating columns as int64; raises SourceUnavailable when one is missing."""
    frame = _rename(frame, RATING_COLUMNS)
    missing = [c for c in RATING_COLUMNS if c not in frame.columns]
    if missing:
        raise SourceUnavailable(f"no {', '.join(missing)} column (found: {', '.join(map(str, frame.columns))})")
    out = pd.DataFrame({c: _as_int(frame[c].round() if c == "rating" else frame[c]) for c in RATING_COLUMNS})
    return out[(out["rating"] >= 1) & (out["rating"] <= 5)].reset_index(drop=True)


def users_normalise(frame: pd.DataFrame) -> pd.DataFrame | None:
    frame = _rename(frame, ["user_id", "age", "gender", "occupation", "zip_code"])
    if "user_id" not in frame.columns:
        return None
    out = pd.DataFrame({"user_id": _as_int(frame["user_id"])})
    out["age"] = pd.to_numeric(frame["age"], errors="coerce") if "age" in frame.columns else float("nan")
    out["gender"] = frame["gender"].map(_gender) if "gender" in frame.columns else ""
    for column in ("occupation", "zip_code"):
        values = frame[column] if column in frame.columns else ""
        out[column] = values if isinstance(values, str) else values.map(_text)
    return out.drop_duplicates("user_id").reset_index(drop=True)


def items_normalise(frame: pd.DataFrame) -> pd.DataFrame | None:
    frame = _rename(frame, ["item_id", "title"])
    if "item_id" not in frame.columns or "title" not in frame.columns:
        return None
    out = pd.DataFrame({"item_id": _as_int(frame["item_id"]), "title": frame["title"].map(_text)})
    return out.drop_duplicates("item_id").reset_index(drop=True)


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None or (isinstance(value, float) and value != value) else str(value)


# --- the hub ------------------------------------------------------------------------------


def hub_load(*, split: str, timeout: float = HUB_TIMEOUT_SECONDS) -> MovieLensData:
    """The hub dataset, or SourceUnavailable within `timeout` seconds. `load_dataset` has no
    timeout of its own, so it runs in a daemon thread that is abandoned when it overruns."""
    outcome: dict = {}

    def fetch():
        try:
            import datasets

            outcome["data"] = datasets.load_dataset(HUB_DATASET, split=split).to_pandas()
        except Exception as exc:  # any failure means "use the next source"
            outcome["error"] = exc

    worker = threading.Thread(target=fetch, name="movielens-hub", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise SourceUnavailable(f"no answer within {timeout:g} s")
    if "error" in outcome:
        exc = outcome["error"]
        reason = str(exc).splitlines()[0][:160] if str(exc) else ""
        raise SourceUnavailable(f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__)
    frame = outcome["data"]
    return MovieLensData(
        ratings=ratings_normalise(frame),
        users=users_normalise(frame),
        items=items_normalise(frame),
        source="hf",
        detail=f"{HUB_DATASET} ({split})",
    )


# --- local files ------------------------------------------------------------------------


def _read_table(path: Path) -> pd.DataFrame:
    """u.data-style TSV without a header, or a CSV/TSV with one, or parquet."""
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    encoding = _text_encoding(path)
    with path.open("r", encoding=encoding) as handle:
        first = handle.readline()
    sep = "\t" if "\t" in first else ("|" if "|" in first else ",")
    # u.data / u.user / u.item start with a numeric id; anything else is a header row.
    has_header = not first.split(sep, 1)[0].strip().strip('"').isdigit()
    return pd.read_csv(path, sep=sep, header=0 if has_header else None, encoding=encoding, engine="c")


def _text_encoding(path: Path) -> str:
    """UTF-8 when the whole file decodes as UTF-8 (recbole's copy, the GroupLens CSVs), else
    latin-1 (GroupLens' original u.item): read as latin-1, a UTF-8 "é" showed as "Ã©"."""
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8"


def _with_default_header(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    if all(isinstance(c, int) for c in frame.columns):
        frame = frame.iloc[:, : len(names)]
        frame.columns = names[: frame.shape[1]]
    return frame


def _find_ratings_file(folder: Path) -> Path | None:
    for name in ("u.data", "ml-100k.inter", "ratings.csv", "ratings.parquet", "ratings.tsv"):
        if (folder / name).is_file():
            return folder / name
    for pattern in ("*.parquet", "*.csv"):
        found = sorted(folder.glob(pattern))
        if found:
            return found[0]
    return None


def _sidecar(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


def file_load(path: str | os.PathLike) -> MovieLensData:
    """A local copy: a ratings file or a folder holding one (`u.data`, CSV, parquet)."""
    path = Path(path).expanduser()
    ratings_path = _find_ratings_file(path) if path.is_dir() else path
    if ratings_path is None or not ratings_path.is_file():
        raise SourceUnavailable(f"no MovieLens ratings file at {path}")
    try:
        frame = _with_default_header(_read_table(ratings_path), RATING_COLUMNS)
        ratings = ratings_normalise(frame)
        folder = ratings_path.parent
        users = items = None
        user_file = _sidecar(folder, ("u.user", "ml-100k.user", "users.csv"))
        if user_file is not None:
            users = users_normalise(
                _with_default_header(_read_table(user_file), ["user_id", "age", "gender", "occupation", "zip_code"])
            )
        if users is None:
            users = users_normalise(frame)  # a CSV/parquet that carries the user columns itself
        item_file = _sidecar(folder, ("u.item", "ml-100k.item"))
        if item_file is not None:
            items = items_normalise(_with_default_header(_read_table(item_file), ["item_id", "title"]))
        if items is None:
            items = items_normalise(frame)
    except SourceUnavailable:
        raise
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise SourceUnavailable(f"cannot read {ratings_path}: {exc}")
    return MovieLensData(ratings=ratings, users=users, items=items, source="file", detail=str(ratings_path))


def local_default_path() -> Path | None:
    """The local copy `--source hf` falls back to: MOVIELENS_PATH, else var/movielens/."""
    configured = settings.MOVIELENS_PATH
    if configured:
        return Path(configured)
    if LOCAL_DEFAULT_DIR.is_dir() and _find_ratings_file(LOCAL_DEFAULT_DIR) is not None:
        return LOCAL_DEFAULT_DIR
    return None


# --- the recbole wheel --------------------------------------------------------------------


def recbole_dir() -> Path:
    """The ml-100k folder of the recbole wheel unpacked under var/ (RECBOLE_TARGET), else
    of a recbole package installed in the environment (SourceUnavailable if neither). Only
    the package's resources are read: recbole's own code (and torch) is never imported
    beyond its trivial `__init__`."""
    from importlib import resources

    unpacked = RECBOLE_TARGET.joinpath("recbole", *RECBOLE_DIR)
    if unpacked.joinpath("ml-100k.inter").is_file():
        return unpacked
    try:
        root = resources.files("recbole")
    except ModuleNotFoundError:
        raise SourceUnavailable("the recbole package is not installed")
    folder = root.joinpath(*RECBOLE_DIR)
    if not folder.joinpath("ml-100k.inter").is_file():
        raise SourceUnavailable("the installed recbole has no dataset_example/ml-100k")
    return Path(str(folder))


def recbole_load() -> MovieLensData:
    data = file_load(recbole_dir() / "ml-100k.inter")
    data.source = "recbole"
    return data


# --- the chain ----------------------------------------------------------------------------


def _hub_left(reason: str) -> str:
    """Why the seeder did not read the hub, as the one line it says: skipped on purpose when
    the hub library is offline (HF_HUB_OFFLINE, which `make demo` sets unless told, and which
    the library reads itself), unreachable otherwise."""
    if "OfflineModeIsEnabled" in reason:
        return "the Hugging Face hub is skipped (HF_HUB_OFFLINE=1; HF_HUB_OFFLINE=0 tries it)"
    return f"the Hugging Face hub is unreachable ({reason})"


def movielens_load(
    *,
    source: str = "hf",
    split: str = "train",
    seed: int = 42,
    hub_timeout: float = HUB_TIMEOUT_SECONDS,
    say: Callable[[str], None] = print,
) -> MovieLensData:
    """The ratings from `source` ("hf", "synthetic", "recbole" or a path); "hf" falls back in
    DESIGN's order and says in one line why it left the hub."""
    if source == "synthetic":
        return synthetic_movielens(seed=seed)
    if source == "recbole":
        return recbole_load()
    if source != "hf":
        return file_load(source)

    try:
        return hub_load(split=split, timeout=hub_timeout)
    except SourceUnavailable as exc:
        left = _hub_left(str(exc))
    # Only the hub knows splits; every local copy is the whole data set, like the hub's train split.
    if split != "train":
        raise SourceUnavailable(f"{left} and only the hub has the '{split}' split")

    local = local_default_path()
    if local is not None:
        try:
            data = file_load(local)
            say(f"MovieLens: {left}; using the local copy {data.detail}.")
            return data
        except SourceUnavailable:
            pass
    try:
        data = recbole_load()
        say(f"MovieLens: {left}; using the copy in the recbole package.")
        return data
    except SourceUnavailable:
        pass
    say(f"MovieLens: {left}; using the synthetic MovieLens-shaped generator.")
    return synthetic_movielens(seed=seed)
