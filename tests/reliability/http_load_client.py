"""A second process on loopback that races to answer picker requests (test_load.py runs it).

usage: http_load_client.py URL CLIENT_ID REQUESTS THREADS
For each of REQUESTS picker requests of CLIENT_ID: THREADS threads post different label lists at
once (plus pending-list readers), as CLIENT_ID: a request is answered only by the client id its
prompt was queued with. Prints one JSON line per request: which thread got the 200.
"""

import json
import sys
import threading
import time

import requests

WORDS = ["like", "dislike", "skip"]


def main() -> None:
    url, client, n_req, n_threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    seen = set()
    deadline = time.monotonic() + 240
    for _ in range(n_req):
        req = None
        while req is None:
            assert time.monotonic() < deadline, "no picker request in time"
            r = requests.get(url + "/papa/pending", params={"client_id": client}, timeout=10)
            fresh = [p for p in r.json()["pending"] if p["request_id"] not in seen]
            req = fresh[0] if fresh else None
            time.sleep(0.05)
        seen.add(req["request_id"])
        n = len(req["candidates"])
        barrier = threading.Barrier(n_threads + 2)
        results: dict[int, tuple[int, list[str]]] = {}

        def answer(i: int, n=n, req=req, barrier=barrier, results=results) -> None:
            labels = [WORDS[(i + j) % 3] for j in range(n)]
            s = requests.Session()
            barrier.wait()
            r = s.post(
                url + "/papa/feedback",
                json={"request_id": req["request_id"], "client_id": client, "labels": labels},
                timeout=30,
            )
            results[i] = (r.status_code, labels)

        def reader(barrier=barrier) -> None:
            barrier.wait()
            for _ in range(20):
                requests.get(url + "/papa/pending", params={"client_id": client}, timeout=10)

        threads = [threading.Thread(target=answer, args=(i,)) for i in range(n_threads)]
        threads += [threading.Thread(target=reader) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = sorted(s for s, _ in results.values())
        winners = [labels for s, labels in results.values() if s == 200]
        print(json.dumps({"request_id": req["request_id"], "statuses": statuses, "won": winners}))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
