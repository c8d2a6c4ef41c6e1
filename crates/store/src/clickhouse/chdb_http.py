"""A ClickHouse HTTP interface over chdb, the embedded current ClickHouse engine (PyPI chdb),
for tests: what Signet's ClickHouse store sends and nothing more (the statement in the body, or
in ?query= with the data in the body; ?database=; other parameters are settings). It lets the
same SQL run on a current engine as on Debian's clickhouse-server 18.16.

Usage: python3 chdb_http.py PORT [DIR]   (DIR: where the engine keeps its files; else a
temporary directory that is left behind when the shim is killed)
"""

import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from chdb import session as chs

LOCK = threading.Lock()  # one chdb session, one statement at a time
SESSION = chs.Session(sys.argv[2]) if len(sys.argv) > 2 else chs.Session()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.answer()

    def do_POST(self):
        self.answer()

    def answer(self):
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(self.path).query))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        sql = params["query"] + "\n" + body if "query" in params else body
        settings = {k: v for k, v in params.items() if k not in ("query", "database")}
        try:
            with LOCK:
                SESSION.query("USE " + params.get("database", "default"), "CSV")
                for key, value in settings.items():
                    SESSION.query("SET %s = %s" % (key, value), "CSV")
                result = SESSION.query(sql, "TabSeparated")
            out, status = (result.bytes() or b""), 200
        except Exception as err:  # the engine's message, as ClickHouse answers it
            out, status = str(err).encode(), 500
        self.send_response(status)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
