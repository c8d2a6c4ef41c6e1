"""How fast this host is right now: fixed single-threaded work of the kinds ingest does
(SHA-256, compression, JSON parsing), timed; the best of three rounds, in milliseconds.
Printed by the bench scripts next to their results, so runs from hours when the host is slower
(a shared VM's neighbours) can be told apart from changes in Signet. Standard library only."""
import hashlib, json, random, sys, time, zlib

rng = random.Random(7)
words = ["Outlook", "Teams", "SharePoint", "Windows", "Chrome", "Edge", "success", "failure",
         "multiFactorAuthentication", "contoso.com", "Seattle", "Redmond", "Amsterdam", "US", "NL"]
records = [
    {"id": "%032x" % rng.getrandbits(128), "userPrincipalName": "user%d@contoso.com" % rng.randrange(5000),
     "appDisplayName": rng.choice(words), "ipAddress": "10.%d.%d.%d" % (rng.randrange(256), rng.randrange(256), rng.randrange(256)),
     "status": {"errorCode": rng.choice([0, 0, 0, 50126, 50074])},
     "location": {"city": rng.choice(words), "countryOrRegion": rng.choice(words)},
     "authenticationDetails": [{"authenticationMethod": rng.choice(words), "succeeded": True}] * 2,
     "userAgent": " ".join(rng.choice(words) for _ in range(12))}
    for _ in range(20000)
]
text = json.dumps(records).encode()          # about 10 MB
blob = text * 4


def timed(work):
    best = None
    for _ in range(3):
        started = time.perf_counter()
        work()
        elapsed = (time.perf_counter() - started) * 1e3
        best = elapsed if best is None else min(best, elapsed)
    return best


sha = timed(lambda: hashlib.sha256(blob).digest())
deflate = timed(lambda: zlib.compress(text, 1))
parse = timed(lambda: json.loads(text))
print("host probe (best of 3, one thread): sha256 %.0f ms, deflate %.0f ms, json %.0f ms, total %.0f ms"
      % (sha, deflate, parse, sha + deflate + parse))
