//! `signet import FILE...`: export files into a data directory or a running server, a piece
//! of whole records at a time (`signet_import::pieces`), so a file of any size fits under the
//! server's request limit and the converted events of one piece at a time are in memory. The
//! file itself is mapped, not read: its pages are the kernel's cache, read as the pieces reach
//! them and dropped under memory pressure, so a file larger than memory imports too.
//!
//! To a server, each piece goes zstd-compressed when the server says (in `/healthz`) that it
//! takes compressed request bodies, and plain otherwise (a server before that would read a
//! compressed body as malformed JSON): a demo NDJSON export goes from 532 MB to 35 MB on the wire.

use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};
use signet_import::pieces::Piece;
use signet_import::Format;
use signet_store::Engine;

use crate::cli::{client, open_engine, ImportArgs, Target};

/// Records per piece at most, in bytes of the file: well under the server's default request
/// limit (64 MiB), and what one piece's conversion holds in memory at once.
const PIECE_BYTES: usize = 16 << 20;

/// What a file's pieces added up to.
#[derive(Default)]
struct Summary {
    accepted: u64,
    revisions: u64,
    duplicates: u64,
    rejected: u64,
    by_kind: [u64; 3],
    /// The first rejections, numbered by the file's records.
    errors: Vec<Value>,
}

const KEPT_ERRORS: usize = 1000;

impl Summary {
    /// Adds one piece's answer (the server's JSON, or the same shape made locally).
    fn add(&mut self, piece: &Piece, answer: &Value) {
        let n = |key: &str| answer[key].as_u64().unwrap_or(0);
        self.accepted += n("accepted");
        self.revisions += n("revisions");
        self.duplicates += n("duplicates");
        self.rejected += n("rejected");
        for (i, key) in ["signIns", "directoryAudits", "activities"].iter().enumerate() {
            self.by_kind[i] += n(key);
        }
        for error in answer["errors"].as_array().into_iter().flatten() {
            if self.errors.len() < KEPT_ERRORS {
                let mut error = error.clone();
                let local = error["record"].as_u64().unwrap_or(0) as usize;
                error["record"] = json!(piece.number(local));
                self.errors.push(error);
            }
        }
    }

    fn print(&self, file: &str) {
        println!(
            "{file}: imported {} ({} sign-ins, {} directory audits, {} activities read), {} new revisions, {} duplicates, {} rejected",
            self.accepted, self.by_kind[0], self.by_kind[1], self.by_kind[2], self.revisions, self.duplicates, self.rejected
        );
        for e in self.errors.iter().take(20) {
            println!(
                "  record {}: {}: {}",
                e["record"],
                e["field"].as_str().unwrap_or(""),
                e["reason"].as_str().unwrap_or("")
            );
        }
        if self.rejected > 20 {
            println!("  ... and {} more", self.rejected - 20);
        }
    }
}

pub(crate) fn run(args: ImportArgs) -> anyhow::Result<()> {
    let format = Format::parse(&args.format)
        .with_context(|| format!("--format {}: expected auto, json, ndjson or csv", args.format))?;
    let (engine, remote) = match &args.target.server {
        Some(server) => (None, Some(Remote::connect(server, !args.no_compress)?)),
        None => (Some(open_engine(&args.target)?), None),
    };
    let mut failed_files = 0;
    for file in &args.files {
        let name = file.display().to_string();
        let result = FileBytes::open(file)
            .with_context(|| format!("reading {name}"))
            .and_then(|bytes| import_file(&args.target, (engine.as_ref(), remote.as_ref()), &name, &bytes, format));
        match result {
            Ok(summary) => summary.print(&name),
            Err(err) => {
                eprintln!("{name}: {err:#}");
                failed_files += 1;
            }
        }
    }
    if let Some(engine) = engine {
        engine.wait_visible(Duration::from_secs(30));
        engine.shutdown();
    }
    if failed_files > 0 {
        bail!("{failed_files} file(s) could not be imported");
    }
    Ok(())
}

/// A file's bytes: mapped when it is a regular file, read otherwise (`-` for standard input, a
/// pipe).
enum FileBytes {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl FileBytes {
    fn open(path: &std::path::Path) -> std::io::Result<FileBytes> {
        if path == std::path::Path::new("-") {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut bytes)?;
            return Ok(FileBytes::Read(bytes));
        }
        let file = std::fs::File::open(path)?;
        let metadata = file.metadata()?;
        // An empty file cannot be mapped.
        if !metadata.is_file() || metadata.len() == 0 {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut &file, &mut bytes)?;
            return Ok(FileBytes::Read(bytes));
        }
        exit_cleanly_on_sigbus();
        // SAFETY: the mapping is read-only and private. A file truncated by another process
        // while it is imported makes reads past its new end fault (SIGBUS), which ends the
        // process with a clear message (`exit_cleanly_on_sigbus`), not undefined behaviour.
        let map = unsafe { memmap2::MmapOptions::new().map(&file)? };
        // Pieces are read front to back, once.
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(FileBytes::Mapped(map))
    }
}

/// Reading a mapped file that another program truncated raises SIGBUS, which would kill the
/// process with a bare "Bus error". This says what happened instead, and exits: what the
/// pieces before stored is durable, and importing the file again is safe.
fn exit_cleanly_on_sigbus() {
    extern "C" fn on_sigbus(_: libc::c_int) {
        const MESSAGE: &[u8] = b"error: the file being imported shrank while it was read (truncated by another program?); \
            the records stored before are kept, and importing the complete file again is safe (stored records count as duplicates)\n";
        // SAFETY: write(2) and _exit(2) are async-signal-safe.
        unsafe {
            libc::write(2, MESSAGE.as_ptr().cast(), MESSAGE.len());
            libc::_exit(1);
        }
    }
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // SAFETY: installs a handler that only calls async-signal-safe functions.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigbus as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
        }
    });
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(map) => map,
            FileBytes::Read(bytes) => bytes,
        }
    }
}

fn import_file(
    target: &Target,
    (engine, remote): (Option<&Engine>, Option<&Remote>),
    name: &str,
    bytes: &[u8],
    format: Format,
) -> anyhow::Result<Summary> {
    let pieces = signet_import::pieces::pieces(bytes, format, PIECE_BYTES)?;
    let progress = indicatif::ProgressBar::new(bytes.len() as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    progress.set_message(name.to_string());
    let mut summary = Summary::default();
    for piece in &pieces {
        let done = match (remote, engine) {
            (Some(remote), _) => send_piece(target, remote, piece, &mut summary),
            (None, Some(engine)) => import_piece(engine, &target.org, piece).map(|answer| summary.add(piece, &answer)),
            (None, None) => unreachable!("an engine is opened when no server is given"),
        };
        done.map_err(|err| {
            progress.finish_and_clear();
            let first = piece.number(1);
            match summary.accepted + summary.duplicates + summary.revisions {
                0 => err.context(format!("at record {first}")),
                _ => err.context(format!(
                    "stopped at record {first} or after: the records before it are stored ({} new); importing \
                     the file again is safe (what is already stored counts as duplicates)",
                    summary.accepted
                )),
            }
        })?;
        progress.inc(piece.len() as u64);
    }
    progress.finish_and_clear();
    Ok(summary)
}

/// One piece through `POST /api/v1/import`, cut in halves while the server finds it too large
/// (413: its `max_body_bytes` is below the piece size). A server refusing a body that large
/// may also close the connection while it is still being sent: a piece whose sending fails is
/// halved too, and only a single record that cannot be sent is an error (sending a record
/// again is safe: what is stored counts as a duplicate).
fn send_piece(target: &Target, remote: &Remote, piece: &Piece, summary: &mut Summary) -> anyhow::Result<()> {
    let refused = match post_piece(target, remote, piece)? {
        Answer::Stored(answer) => {
            summary.add(piece, &answer);
            return Ok(());
        }
        Answer::TooLarge(message) => anyhow::anyhow!("over the server's request limit: {message}"),
        Answer::Unsent(err) => err,
    };
    match piece.halves() {
        Some((first, second)) => {
            send_piece(target, remote, &first, summary)?;
            send_piece(target, remote, &second, summary)
        }
        None => Err(refused.context(format!("record {}", piece.number(1)))),
    }
}

enum Answer {
    Stored(Value),
    /// 413, with the server's message.
    TooLarge(String),
    /// The request could not be sent whole (the connection closed while it was written).
    Unsent(anyhow::Error),
}

/// The server an import sends to: one client (its connections are reused from piece to
/// piece) and whether the server takes zstd-compressed bodies.
pub(crate) struct Remote {
    base: String,
    client: reqwest::blocking::Client,
    compress: bool,
}

/// zstd level for the pieces: level 1 already shrinks JSON exports about fifteenfold, at several
/// hundred MB/s.
const PIECE_ZSTD_LEVEL: i32 = 1;

impl Remote {
    /// Asks the server (`/healthz`, no key needed) which request encodings it takes; a server
    /// that does not say, or cannot be asked, gets plain bodies.
    fn connect(server: &str, may_compress: bool) -> anyhow::Result<Remote> {
        let base = server.trim_end_matches('/').to_string();
        let client = client()?;
        let compress = may_compress
            && client
                .get(format!("{base}/healthz"))
                .send()
                .and_then(|r| r.json::<Value>())
                .is_ok_and(|health| takes_zstd(&health));
        Ok(Remote { base, client, compress })
    }
}

/// Whether a `/healthz` answer lists zstd among the request encodings the server decompresses.
fn takes_zstd(health: &Value) -> bool {
    health["requestEncodings"].as_array().is_some_and(|list| list.iter().any(|e| e.as_str() == Some("zstd")))
}

/// Waits out 429/503 answers as they ask.
fn post_piece(target: &Target, remote: &Remote, piece: &Piece) -> anyhow::Result<Answer> {
    let document = piece.document();
    let format = match piece.format() {
        Format::Csv => "csv",
        Format::Ndjson => "ndjson",
        _ => "json",
    };
    let body = match remote.compress {
        true => zstd::bulk::compress(&document, PIECE_ZSTD_LEVEL).context("compressing a piece")?,
        false => document,
    };
    for attempt in 1.. {
        let mut request = remote
            .client
            .post(format!("{}/api/v1/import", remote.base))
            .query(&[("format", format)])
            .body(body.clone());
        if remote.compress {
            request = request.header(reqwest::header::CONTENT_ENCODING, "zstd");
        }
        let response = match target.authorize(request).send() {
            Ok(response) => response,
            Err(err) if err.is_request() || err.is_body() => return Ok(Answer::Unsent(err.into())),
            Err(err) => return Err(err.into()),
        };
        let status = response.status();
        let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let body: Value = response.json().context("the server's answer is not JSON")?;
        if let Some(message) = body["error"]["message"].as_str() {
            if status.as_u16() == 413 {
                return Ok(Answer::TooLarge(message.to_string()));
            }
            let busy = status.as_u16() == 429 || status.as_u16() == 503;
            if busy && attempt < 30 {
                std::thread::sleep(Duration::from_secs(retry_after.unwrap_or(1).clamp(1, 30)));
                continue;
            }
            bail!("server answered {status}: {message}");
        }
        return Ok(Answer::Stored(body));
    }
    unreachable!("the loop returns")
}

/// One piece into the local data directory.
fn import_piece(engine: &Engine, org: &str, piece: &Piece) -> anyhow::Result<Value> {
    let imported = signet_import::import_bytes(&piece.document(), piece.format())?;
    let mut outcome = signet_store::Outcome::default();
    let by_kind = imported.by_kind;
    let mut events = imported.events;
    while !events.is_empty() {
        let rest = events.split_off(events.len().min(10_000));
        let chunk = std::mem::replace(&mut events, rest);
        let o = crate::demo::submit_patiently(engine, org, chunk)?;
        outcome.accepted += o.accepted;
        outcome.duplicates += o.duplicates;
        outcome.revisions += o.revisions;
    }
    Ok(json!({
        "accepted": outcome.accepted, "revisions": outcome.revisions, "duplicates": outcome.duplicates,
        "rejected": imported.rejected.len(), "signIns": by_kind[0], "directoryAudits": by_kind[1], "activities": by_kind[2],
        "errors": imported.rejected,
    }))
}
