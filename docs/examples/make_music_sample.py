"""Generate docs/examples/music_events.csv.gz: a small event log in a music-streaming layout.

The layout follows the public "Sparkify"-style page log (one row per page hit): ``ts``
(epoch milliseconds), ``userId`` (empty for logged-out hits), ``sessionId``, ``page``,
``auth``, ``level`` (free / paid), ``itemInSession``, ``length`` (seconds, song rows only),
``song``, ``artist``, ``registration`` (epoch ms), ``userAgent``. Synthetic (seeded), not
downloaded data: users have an engagement level that drifts; some fade out, visit the
help page and then cancel (``Cancellation Confirmation``); others stay.

    python docs/examples/make_music_sample.py            # rewrites the shipped sample
"""

from __future__ import annotations

import csv
import gzip
import io
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

OUT = Path(__file__).with_name("music_events.csv.gz")
START = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 150
USERS = 600
SEED = 7
AGENTS = ("Mozilla/5.0 (Windows NT 10.0)", "Mozilla/5.0 (Macintosh)", "Mozilla/5.0 (iPhone)")
SONGS = [(f"Song {i}", f"Artist {i % 37}", 120.0 + (i * 7919) % 240) for i in range(400)]


def generate(seed: int = SEED) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    base_ms = int(START.timestamp() * 1000)
    day_ms = 86_400_000
    join_day = np.where(rng.random(USERS) < 0.6, 0, rng.integers(0, DAYS - 60, USERS))
    registration = base_ms + (join_day - rng.integers(0, 300, USERS)) * day_ms
    level = np.where(rng.random(USERS) < 0.45, "paid", "free").astype(object)
    engagement = rng.lognormal(0.0, 0.5, USERS)
    fade_start = np.where(rng.random(USERS) < 0.45, rng.integers(20, DAYS, USERS), 10**6)
    active = np.zeros(USERS, bool)
    agent = rng.integers(0, len(AGENTS), USERS)
    rows: list[dict[str, object]] = []
    session = 0
    for day in range(DAYS):
        active |= join_day == day
        fading = day >= fade_start
        engagement = np.where(fading, engagement * 0.93, engagement * np.exp(rng.normal(0, 0.03, USERS)))
        n_sessions = rng.poisson(0.11 * engagement) * active
        for u in np.flatnonzero(n_sessions).tolist():
            for _ in range(int(n_sessions[u])):
                session += 1
                t = base_ms + day * day_ms + int(rng.integers(6 * 3_600_000, 23 * 3_600_000))
                pages = ["Home"] * int(rng.random() < 0.3) + ["NextSong"] * int(1 + rng.poisson(0.2 + 0.3 * engagement[u]))
                if rng.random() < 0.1:
                    pages.append("Thumbs Up")
                if fading[u] and rng.random() < 0.25:
                    pages.append("Help")
                if level[u] == "free" and rng.random() < 0.02:
                    pages.append("Submit Upgrade")
                elif level[u] == "paid" and rng.random() < 0.01 + 0.05 * fading[u]:
                    pages.append("Submit Downgrade")
                for item, page in enumerate(pages):
                    song = SONGS[int(rng.integers(len(SONGS)))] if page == "NextSong" else None
                    rows.append({
                        "ts": t, "userId": f"{100 + u}", "sessionId": session, "page": page, "auth": "Logged In",
                        "level": level[u], "itemInSession": item, "length": f"{song[2]:.5f}" if song else "",
                        "song": song[0] if song else "", "artist": song[1] if song else "",
                        "registration": int(registration[u]), "userAgent": AGENTS[agent[u]],
                    })
                    if page == "Submit Upgrade":
                        level[u] = "paid"
                    elif page == "Submit Downgrade":
                        level[u] = "free"
                    t += int(rng.integers(20_000, 260_000))
        # logged-out hits carry no user id (rejected by the import, dead-lettered)
        for _ in range(int(rng.poisson(1.2))):
            rows.append({"ts": base_ms + day * day_ms + int(rng.integers(0, day_ms)), "userId": "",
                         "sessionId": 0, "page": "Home", "auth": "Logged Out", "level": "free", "itemInSession": 0,
                         "length": "", "song": "", "artist": "", "registration": "", "userAgent": AGENTS[0]})
        # cancellations: fading users with low engagement leave; a few others leave at random
        hazard = np.where(fading, 0.01 + 0.3 * (engagement < 0.3), 0.0005) * active
        leave = rng.random(USERS) < hazard
        for u in np.flatnonzero(leave).tolist():
            t = base_ms + day * day_ms + int(rng.integers(8 * 3_600_000, 22 * 3_600_000))
            session += 1
            for item, page in enumerate(("Cancel", "Cancellation Confirmation")):
                rows.append({"ts": t + item * 30_000, "userId": f"{100 + u}", "sessionId": session, "page": page,
                             "auth": "Cancelled" if item else "Logged In", "level": level[u],
                             "itemInSession": item, "length": "", "song": "", "artist": "",
                             "registration": int(registration[u]), "userAgent": AGENTS[agent[u]]})
        active &= ~leave
    rows.sort(key=lambda r: (r["ts"], str(r["userId"])))
    return rows


def main() -> None:
    rows = generate()
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    with gzip.GzipFile(OUT, "wb", mtime=0) as f:  # mtime=0: the same bytes on every run
        f.write(buf.getvalue().encode())
    print(f"{OUT}: {len(rows):,} rows, {OUT.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
