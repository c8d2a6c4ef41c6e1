//! Syslog for forwarders: RFC 5424 messages, optionally with a CEF payload, over TCP (RFC 6587
//! octet counting), TLS (RFC 5425), UDP (RFC 5426) or RELP (rsyslog's acknowledged protocol).
//!
//! Message: `<PRI>1 TIMESTAMP HOSTNAME signet - MSGID [signet@32473 org=".." kind=".." id=".."
//! rev=".." pos=".."] BOM MSG`, where TIMESTAMP is the event's own time, MSGID the log kind,
//! `pos` the event log position of the frame holding the event, and MSG the event as JSON (the
//! forwarder's `signet` or `ocsf` format) or as a CEF line. 32473 is the private enterprise
//! number RFC 5612 reserves for documentation.
//!
//! What "delivered" means differs by transport, and the forwarder says so in its docs:
//! - RELP: the receiver answered `200 OK` for every message of the batch.
//! - TCP and TLS: the kernel took the bytes. A receiver that dies loses what it had read but
//!   not processed, so when a connection breaks the forwarder sends again everything it sent on
//!   that connection in the last [`RESEND_WINDOW`] (duplicates, never gaps, in practice).
//! - UDP: sent; datagrams may be lost on the way and are cut at 65,000 bytes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use signet_model::{CellRef, Event, LogKind};

/// How far back a broken TCP/TLS connection makes the forwarder resend.
pub const RESEND_WINDOW: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest datagram sent: the IPv4 UDP payload limit with some room.
pub const MAX_DATAGRAM: usize = 65_000;
/// RELP messages in flight before the answers are read.
const RELP_WINDOW: usize = 128;
const SD_ID: &str = "signet@32473";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Tls,
    Udp,
    Relp,
}

/// Where a syslog forwarder sends: `tcp://`, `tls://`, `udp://` or `relp://` + `host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub protocol: Protocol,
    pub host: String,
    pub port: u16,
}

impl Target {
    /// `None` for a URL that is not a syslog one (the forwarder's webhook).
    pub fn parse(url: &str) -> Result<Option<Target>, String> {
        let Some((scheme, rest)) = url.split_once("://") else { return Ok(None) };
        let protocol = match scheme {
            "tcp" => Protocol::Tcp,
            "tls" => Protocol::Tls,
            "udp" => Protocol::Udp,
            "relp" => Protocol::Relp,
            _ => return Ok(None),
        };
        let authority = rest.trim_end_matches('/');
        let (host, port) =
            authority.rsplit_once(':').ok_or_else(|| format!("{url}: a syslog address is {scheme}://host:port"))?;
        let port: u16 = port.parse().map_err(|_| format!("{url}: port {port:?} is not a number 1-65535"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port == 0 || authority.contains('/') {
            return Err(format!("{url}: a syslog address is {scheme}://host:port"));
        }
        Ok(Some(Target { protocol, host: host.to_string(), port }))
    }

    pub fn is_loopback(&self) -> bool {
        matches!(self.host.as_str(), "127.0.0.1" | "localhost" | "::1")
    }
}

/// The parts of one RFC 5424 message.
pub struct Message<'a> {
    pub facility: u8,
    pub severity: u8,
    pub time_us: i64,
    pub hostname: &'a str,
    pub msgid: &'a str,
    /// Parameters of the `signet@32473` structured-data element.
    pub params: &'a [(&'a str, String)],
    pub msg: &'a str,
}

/// Severity of an event: warning for failures, notice for successful directory changes,
/// informational otherwise.
pub fn severity(kind: LogKind, failed: bool) -> u8 {
    match (failed, kind) {
        (true, _) => 4,
        (false, LogKind::DirectoryAudit) => 5,
        (false, _) => 6,
    }
}

/// MSGID of a log kind.
pub fn msgid(kind: LogKind) -> &'static str {
    match kind {
        LogKind::SignIn => "signIn",
        LogKind::DirectoryAudit => "directoryAudit",
        LogKind::Activity => "activity",
    }
}

/// An RFC 5424 header field: printable US-ASCII without spaces, at most `max` characters, or
/// `-` when nothing is left.
fn header_field(value: &str, max: usize) -> String {
    let kept: String = value.chars().filter(|c| c.is_ascii_graphic()).take(max).collect();
    if kept.is_empty() {
        "-".into()
    } else {
        kept
    }
}

/// The message in RFC 5424 syntax (MSG as UTF-8 with its BOM).
pub fn rfc5424(m: &Message) -> Vec<u8> {
    let pri = u16::from(m.facility.min(23)) * 8 + u16::from(m.severity.min(7));
    let mut sd = format!("[{SD_ID}");
    for (name, value) in m.params {
        sd.push(' ');
        sd.push_str(name);
        sd.push_str("=\"");
        for c in value.chars() {
            if matches!(c, '"' | '\\' | ']') {
                sd.push('\\');
            }
            sd.push(c);
        }
        sd.push('"');
    }
    sd.push(']');
    let time = signet_model::time::format_time(m.time_us);
    let mut out =
        format!("<{pri}>1 {time} {} signet - {} {sd} ", header_field(m.hostname, 255), header_field(m.msgid, 32))
            .into_bytes();
    out.extend_from_slice("\u{feff}".as_bytes());
    out.extend_from_slice(m.msg.as_bytes());
    out
}

/// This machine's name for the HOSTNAME field.
pub fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_string())
        .unwrap_or_default()
}

fn cef_header(value: &str) -> String {
    value.replace('\\', "\\\\").replace('|', "\\|").replace(['\r', '\n'], " ")
}

fn cef_value(value: &str) -> String {
    value.replace('\\', "\\\\").replace('=', "\\=").replace('\n', "\\n").replace('\r', "\\r")
}

fn text(event: &Event, column: &str) -> Option<String> {
    match event.cell(column)? {
        CellRef::Str(s) if !s.is_empty() => Some(s.to_owned()),
        CellRef::Int(i) => Some(i.to_string()),
        CellRef::List(values) => values.iter().next().map(str::to_owned),
        _ => None,
    }
}

/// A CEF extension: key and value (none: left out).
type CefField = (&'static str, Option<String>);

/// The event as an ArcSight CEF line (version 0): header `CEF:0|Signet|Signet|version|
/// signature|name|severity|` and the mapped fields as extensions; the organisation in `cs1`.
pub fn cef(event: &Event, org: &str, failed: bool) -> String {
    let t = |column: &str| text(event, column);
    let (signature, name, severity, fields): (String, String, u8, Vec<CefField>) = match event.kind {
        LogKind::SignIn => {
            let code = t("error_code").unwrap_or_else(|| "0".into());
            let status = t("status").unwrap_or_default();
            let name = match status.as_str() {
                "success" => "Sign-in succeeded".to_string(),
                "interrupted" => "Sign-in interrupted".to_string(),
                _ => format!("Sign-in failed: {}", t("failure_reason").unwrap_or_else(|| format!("error {code}"))),
            };
            let severity = match status.as_str() {
                "success" => 3,
                "interrupted" => 5,
                _ => 7,
            };
            let fields = vec![
                ("suser", t("user_principal_name")),
                ("suid", t("user_id")),
                ("src", t("ip_address")),
                ("requestClientApplication", t("user_agent")),
                ("destinationServiceName", t("app_display_name")),
                ("app", t("client_app_used")),
                ("outcome", Some(status)),
                ("reason", t("failure_reason")),
                ("cs2Label", Some("errorCode".into())),
                ("cs2", Some(code.clone())),
                ("cs3Label", Some("location".into())),
                (
                    "cs3",
                    Some([t("city"), t("state"), t("country")].into_iter().flatten().collect::<Vec<_>>().join(", "))
                        .filter(|s| !s.is_empty()),
                ),
            ];
            (format!("signIn:{code}"), name, severity, fields)
        }
        LogKind::DirectoryAudit => {
            let name = t("activity_display_name").unwrap_or_else(|| "Directory change".into());
            let fields = vec![
                ("suser", t("initiated_by_upn").or_else(|| t("initiated_by_app_name"))),
                ("suid", t("initiated_by_user_id")),
                ("src", t("initiated_by_ip")),
                ("duser", t("target_upns")),
                ("cat", t("category")),
                ("act", t("operation_type")),
                ("outcome", t("result")),
                ("reason", t("result_reason")),
            ];
            (format!("directoryAudit:{name}"), name, if failed { 6 } else { 3 }, fields)
        }
        LogKind::Activity => {
            let operation = t("operation").unwrap_or_else(|| "Activity".into());
            let name = match t("entity_name") {
                Some(entity) => format!("{operation} {entity}"),
                None => operation.clone(),
            };
            let fields = vec![
                ("suser", t("user_upn")),
                ("suid", t("user_id")),
                ("src", t("client_ip")),
                ("act", Some(operation.clone())),
                ("request", t("item_url")),
                ("requestClientApplication", t("user_agent")),
                ("outcome", t("result_status")),
                ("cs3Label", Some("entityName".into())),
                ("cs3", t("entity_name")),
                ("cs5Label", Some("entityId".into())),
                ("cs5", t("entity_id")),
            ];
            (format!("activity:{operation}"), name, if failed { 6 } else { 3 }, fields)
        }
    };
    let mut out = format!(
        "CEF:0|Signet|Signet|{}|{}|{}|{severity}|rt={} externalId={} cs1Label=organization cs1={}",
        env!("CARGO_PKG_VERSION"),
        cef_header(&signature),
        cef_header(&name),
        event.time_us / 1000,
        cef_value(&event.id),
        cef_value(org),
    );
    if let Some(correlation) = t("correlation_id") {
        out.push_str(&format!(" cs4Label=correlationId cs4={}", cef_value(&correlation)));
    }
    // A label without its value says nothing: both go, or neither.
    let mut fields = fields.into_iter().peekable();
    while let Some((key, value)) = fields.next() {
        if key.ends_with("Label") {
            let Some((next_key, next_value)) = fields.next() else { break };
            if let Some(v) = next_value {
                out.push_str(&format!(
                    " {key}={} {next_key}={}",
                    cef_value(value.as_deref().unwrap_or("")),
                    cef_value(&v)
                ));
            }
        } else if let Some(v) = value {
            out.push_str(&format!(" {key}={}", cef_value(&v)));
        }
    }
    out
}

/// TLS settings: the system's web roots, or the CAs of `ca_file` (PEM) for a private CA.
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                roots.add(cert).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("ca_file {}: no certificate in it", path.display()));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

enum Connection {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    Udp(UdpSocket),
    Relp { reader: BufReader<TcpStream>, writer: TcpStream, txnr: u64 },
}

/// A connection to one syslog receiver, opened on demand and dropped on any error.
pub struct Sink {
    target: Target,
    tls: Option<Arc<rustls::ClientConfig>>,
    connection: Option<Connection>,
}

impl Sink {
    pub fn new(target: Target, ca_file: Option<&Path>) -> Result<Sink, String> {
        let tls = match target.protocol {
            Protocol::Tls => Some(tls_config(ca_file)?),
            _ => None,
        };
        Ok(Sink { target, tls, connection: None })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    fn tcp(&self) -> std::io::Result<TcpStream> {
        let mut last = None;
        for address in (self.target.host.as_str(), self.target.port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) {
                Ok(stream) => {
                    stream.set_write_timeout(Some(IO_TIMEOUT))?;
                    stream.set_read_timeout(Some(IO_TIMEOUT))?;
                    stream.set_nodelay(true)?;
                    return Ok(stream);
                }
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other(format!("{}: no address", self.target.host))))
    }

    fn connect(&self) -> std::io::Result<Connection> {
        Ok(match self.target.protocol {
            Protocol::Tcp => Connection::Tcp(self.tcp()?),
            Protocol::Tls => {
                let config = self.tls.clone().expect("TLS targets have a configuration");
                let name = rustls::pki_types::ServerName::try_from(self.target.host.clone())
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                let client = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
                let mut stream = rustls::StreamOwned::new(client, self.tcp()?);
                while stream.conn.is_handshaking() {
                    stream.conn.complete_io(&mut stream.sock)?;
                }
                Connection::Tls(Box::new(stream))
            }
            Protocol::Udp => {
                let address = (self.target.host.as_str(), self.target.port)
                    .to_socket_addrs()?
                    .next()
                    .ok_or_else(|| std::io::Error::other(format!("{}: no address", self.target.host)))?;
                let socket = UdpSocket::bind(if address.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
                socket.connect(address)?;
                Connection::Udp(socket)
            }
            Protocol::Relp => {
                let stream = self.tcp()?;
                let mut connection =
                    Connection::Relp { reader: BufReader::new(stream.try_clone()?), writer: stream, txnr: 0 };
                relp_open(&mut connection)?;
                connection
            }
        })
    }

    /// Whether the connection (if any) is still open: a receiver that went away since the last
    /// batch is noticed before the next one, so the forwarder can resend what it may have lost.
    /// Drops a closed connection.
    pub fn connection_lost(&mut self) -> bool {
        let lost = match &mut self.connection {
            None | Some(Connection::Udp(_)) | Some(Connection::Relp { .. }) => false,
            Some(Connection::Tcp(stream)) => peer_closed(stream, |s, buf| s.peek(buf)),
            Some(Connection::Tls(stream)) => peer_closed(stream.as_mut(), |s, buf| s.read(buf)),
        };
        if lost {
            self.connection = None;
        }
        lost
    }

    /// Sends the messages; on an error the connection is dropped (the next call reconnects).
    pub fn send(&mut self, messages: &[Vec<u8>]) -> std::io::Result<()> {
        if self.connection.is_none() {
            self.connection = Some(self.connect()?);
        }
        let connection = self.connection.as_mut().expect("connected above");
        let sent = match connection {
            Connection::Tcp(stream) => write_framed(stream, messages),
            Connection::Tls(stream) => write_framed(stream.as_mut(), messages),
            Connection::Udp(socket) => {
                messages.iter().try_for_each(|m| socket.send(&m[..m.len().min(MAX_DATAGRAM)]).map(drop))
            }
            Connection::Relp { .. } => relp_send(connection, messages),
        };
        if sent.is_err() {
            self.connection = None;
        }
        sent
    }
}

/// Reads without blocking: end of stream or an error means the peer closed the connection.
fn peer_closed<S>(stream: &mut S, read: impl Fn(&mut S, &mut [u8]) -> std::io::Result<usize>) -> bool
where
    S: AsSocket,
{
    if stream.socket().set_nonblocking(true).is_err() {
        return true;
    }
    let mut buf = [0u8; 256];
    let closed = match read(stream, &mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(err) => err.kind() != std::io::ErrorKind::WouldBlock,
    };
    closed || stream.socket().set_nonblocking(false).is_err()
}

trait AsSocket {
    fn socket(&self) -> &TcpStream;
}

impl AsSocket for TcpStream {
    fn socket(&self) -> &TcpStream {
        self
    }
}

impl AsSocket for rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    fn socket(&self) -> &TcpStream {
        &self.sock
    }
}

/// RFC 6587 octet counting: `LENGTH SP MESSAGE`, so messages may hold newlines.
fn write_framed(stream: &mut impl Write, messages: &[Vec<u8>]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(messages.iter().map(|m| m.len() + 8).sum());
    for message in messages {
        buf.extend_from_slice(format!("{} ", message.len()).as_bytes());
        buf.extend_from_slice(message);
    }
    stream.write_all(&buf)?;
    stream.flush()
}

fn relp_parts(connection: &mut Connection) -> (&mut BufReader<TcpStream>, &mut TcpStream, &mut u64) {
    match connection {
        Connection::Relp { reader, writer, txnr } => (reader, writer, txnr),
        _ => unreachable!("only RELP connections speak RELP"),
    }
}

fn next_txnr(txnr: &mut u64) -> u64 {
    // Transaction numbers run 1..=999,999,999 and wrap to 1.
    *txnr = if *txnr >= 999_999_999 { 1 } else { *txnr + 1 };
    *txnr
}

fn relp_frame(txnr: u64, command: &str, data: &[u8]) -> Vec<u8> {
    let mut frame = format!("{txnr} {command} {}", data.len()).into_bytes();
    if !data.is_empty() {
        frame.push(b' ');
        frame.extend_from_slice(data);
    }
    frame.push(b'\n');
    frame
}

fn protocol_error(what: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

/// Reads one frame: (transaction number, command, data).
fn relp_read(reader: &mut BufReader<TcpStream>) -> std::io::Result<(u64, String, Vec<u8>)> {
    fn token(reader: &mut BufReader<TcpStream>, max: usize) -> std::io::Result<(String, u8)> {
        let mut out = Vec::new();
        loop {
            let mut byte = [0u8];
            reader.read_exact(&mut byte)?;
            if byte[0] == b' ' || byte[0] == b'\n' {
                return String::from_utf8(out)
                    .map(|s| (s, byte[0]))
                    .map_err(|_| protocol_error("RELP: bad header".into()));
            }
            out.push(byte[0]);
            if out.len() > max {
                return Err(protocol_error("RELP: header too long".into()));
            }
        }
    }
    let (txnr, _) = token(reader, 9)?;
    let (command, _) = token(reader, 32)?;
    let (length, after) = token(reader, 9)?;
    let txnr: u64 = txnr.parse().map_err(|_| protocol_error(format!("RELP: transaction number {txnr:?}")))?;
    let length: usize = length.parse().map_err(|_| protocol_error(format!("RELP: data length {length:?}")))?;
    let mut data = vec![0u8; length];
    if length > 0 {
        if after != b' ' {
            return Err(protocol_error("RELP: data without a separator".into()));
        }
        reader.read_exact(&mut data)?;
        let mut trailer = [0u8];
        reader.read_exact(&mut trailer)?;
        if trailer[0] != b'\n' {
            return Err(protocol_error("RELP: frame without its trailer".into()));
        }
    } else if after != b'\n' {
        // "txnr command 0\n": the trailer follows the length directly; tolerate a space.
        reader.read_until(b'\n', &mut Vec::new())?;
    }
    Ok((txnr, command, data))
}

/// Reads the answer to transaction `txnr`; anything but `200` is an error.
fn relp_expect_ok(reader: &mut BufReader<TcpStream>, txnr: u64) -> std::io::Result<()> {
    let (got, command, data) = relp_read(reader)?;
    let text = String::from_utf8_lossy(&data);
    if command == "serverclose" {
        return Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "RELP: the receiver closed the session",
        ));
    }
    if command != "rsp" || got != txnr {
        return Err(protocol_error(format!("RELP: expected the answer to {txnr}, got {got} {command}")));
    }
    if !text.starts_with("200") {
        return Err(protocol_error(format!(
            "RELP: the receiver refused message {txnr}: {}",
            text.lines().next().unwrap_or("")
        )));
    }
    Ok(())
}

fn relp_open(connection: &mut Connection) -> std::io::Result<()> {
    let (reader, writer, txnr) = relp_parts(connection);
    let n = next_txnr(txnr);
    let offers = format!("relp_version=0\nrelp_software=signet,{}\ncommands=syslog", env!("CARGO_PKG_VERSION"));
    writer.write_all(&relp_frame(n, "open", offers.as_bytes()))?;
    relp_expect_ok(reader, n)
}

/// Sends in windows of [`RELP_WINDOW`] messages, each window answered before the next.
fn relp_send(connection: &mut Connection, messages: &[Vec<u8>]) -> std::io::Result<()> {
    let (reader, writer, txnr) = relp_parts(connection);
    for window in messages.chunks(RELP_WINDOW) {
        let mut pending = Vec::with_capacity(window.len());
        let mut buf = Vec::new();
        for message in window {
            let n = next_txnr(txnr);
            pending.push(n);
            buf.extend_from_slice(&relp_frame(n, "syslog", message));
        }
        writer.write_all(&buf)?;
        for n in pending {
            relp_expect_ok(reader, n)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_parsed() {
        assert_eq!(
            Target::parse("tls://siem.example.com:6514").unwrap(),
            Some(Target { protocol: Protocol::Tls, host: "siem.example.com".into(), port: 6514 })
        );
        assert_eq!(Target::parse("udp://[::1]:514").unwrap().unwrap().host, "::1");
        assert!(Target::parse("https://example.com/in").unwrap().is_none());
        for bad in ["tcp://host", "tcp://host:port", "tcp://:514", "relp://host:0", "tcp://host:514/path"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn messages_follow_rfc_5424() {
        let params = [("org", "contoso".to_string()), ("id", "a\"b]c\\d".to_string())];
        let message = rfc5424(&Message {
            facility: 13,
            severity: 4,
            time_us: 1_795_168_800_123_456,
            hostname: "host one",
            msgid: "signIn",
            params: &params,
            msg: "{\"x\":1}",
        });
        let text = String::from_utf8(message).unwrap();
        assert_eq!(
            text,
            "<108>1 2026-11-20T10:00:00.123456Z hostone signet - signIn [signet@32473 org=\"contoso\" id=\"a\\\"b\\]c\\\\d\"] \u{feff}{\"x\":1}"
        );
    }

    #[test]
    fn cef_escapes_and_maps() {
        let event = signet_model::normalize(
            LogKind::SignIn,
            br#"{"id":"s=1","createdDateTime":"2026-11-20T10:00:00Z","userPrincipalName":"ann@contoso.com",
                "appDisplayName":"Pay|roll","ipAddress":"10.1.2.3","correlationId":"c1",
                "status":{"errorCode":50126,"failureReason":"Invalid\nusername or password"}}"#,
        )
        .unwrap();
        let line = cef(&event, "contoso", true);
        assert!(line.starts_with("CEF:0|Signet|Signet|"), "{line}");
        assert!(line.contains("|signIn:50126|Sign-in failed: Invalid username or password|7|"), "{line}");
        assert!(line.contains("rt=1795168800000 externalId=s\\=1 cs1Label=organization cs1=contoso"), "{line}");
        assert!(line.contains(" suser=ann@contoso.com"), "{line}");
        assert!(line.contains(" destinationServiceName=Pay|roll"), "pipes need no escape in extensions: {line}");
        assert!(line.contains(" reason=Invalid\\nusername or password"), "{line}");
        assert!(line.contains(" cs2Label=errorCode cs2=50126"), "{line}");
        assert!(line.contains(" cs4Label=correlationId cs4=c1"), "{line}");
        assert!(!line.contains("cs3Label"), "no location, no label: {line}");
    }

    #[test]
    fn relp_frames() {
        assert_eq!(relp_frame(7, "syslog", b"hi"), b"7 syslog 2 hi\n");
        assert_eq!(relp_frame(8, "close", b""), b"8 close 0\n");
        let mut txnr = 999_999_999;
        assert_eq!(next_txnr(&mut txnr), 1);
    }
}
