//! Syslog forwarders (issue 6) against a real rsyslog (Debian `rsyslog`, `rsyslog-relp`,
//! `rsyslog-gnutls`) that each test starts on loopback ports: RELP and TCP receivers killed with
//! SIGKILL mid-stream lose nothing and see nothing reordered; TLS with a private CA; UDP; the
//! RFC 5424 header, structured data and CEF payload as rsyslog parses them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use signet_server::forward::ForwardSettings;
use signet_server::ServerConfig;
use signet_store::clickhouse::local::free_port;

use crate::{signin, TestServer};

/// One rsyslogd writing what it receives to `out.log`, one line per message:
/// `PRI|HOSTNAME|APP-NAME|MSGID|STRUCTURED-DATA|MSG`.
struct Rsyslog {
    dir: PathBuf,
    conf: PathBuf,
    child: Option<Child>,
}

impl Rsyslog {
    /// `input`: the module and input lines for the protocol; `global`: extra global() settings.
    fn start(dir: &Path, input: &str, global: &str) -> Rsyslog {
        std::fs::create_dir_all(dir.join("work")).unwrap();
        let conf = dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{work}" maxMessageSize="256k" {global})
main_queue(queue.type="Direct")
{input}
template(name="line" type="string" string="%pri%|%hostname%|%app-name%|%msgid%|%structured-data%|%msg%\n")
action(type="omfile" file="{out}" template="line" flushOnTXEnd="on" asyncWriting="off")
"#,
                work = dir.join("work").display(),
                out = dir.join("out.log").display(),
            ),
        )
        .unwrap();
        let mut rsyslog = Rsyslog { dir: dir.to_path_buf(), conf, child: None };
        rsyslog.restart();
        rsyslog
    }

    fn restart(&mut self) {
        let pid = self.dir.join("rsyslogd.pid");
        let _ = std::fs::remove_file(&pid);
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&self.conf)
            .arg("-i")
            .arg(&pid)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rsyslogd (Debian packages rsyslog, rsyslog-relp, rsyslog-gnutls; .ci/run installs them)");
        self.child = Some(child);
        for _ in 0..100 {
            if pid.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(pid.exists(), "rsyslogd did not start: rsyslogd -N1 -f {}", self.conf.display());
        std::thread::sleep(Duration::from_millis(300)); // inputs listening
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }

    /// The messages of one MSGID, split into their fields.
    fn messages(&self, msgid: &str) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(self.dir.join("out.log")).unwrap_or_default();
        text.lines()
            .map(|line| line.splitn(6, '|').map(str::to_string).collect::<Vec<_>>())
            .filter(|fields| fields.len() == 6 && fields[3] == msgid)
            .collect()
    }

    /// Sign-in ids in arrival order, each once (first arrival).
    fn signin_ids(&self) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        self.messages("signIn")
            .iter()
            .map(|fields| sd_param(&fields[4], "id"))
            .filter(|id| seen.insert(id.clone()))
            .collect()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.kill();
    }
}

fn sd_param(sd: &str, name: &str) -> String {
    let start = sd.find(&format!(" {name}=\"")).unwrap_or_else(|| panic!("{name} in {sd}")) + name.len() + 3;
    sd[start..].split('"').next().unwrap().to_string()
}

fn forward(name: &str, url: &str, extra: &str) -> ForwardSettings {
    let json = format!(r#"{{"name":"{name}","url":"{url}","kinds":["signins"],"batch_size":40{extra}}}"#);
    serde_json::from_str(&json).unwrap()
}

fn batch(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| {
            let code = if n % 7 == 0 { 50126 } else { 0 };
            signin(&format!("s-{n:04}"), 1, "ann@default.example", "Pay|roll", code, "")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..600 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Ingests 3,000 sign-ins, SIGKILLs the receiver while the forwarder is streaming them (after
/// the first 100 arrived), ingests 1,000 more while it is down and starts it again a second
/// later: every sign-in arrives, in the order stored.
async fn survive_a_killed_receiver(rsyslog: &mut Rsyslog, server: &TestServer) {
    let expected: Vec<String> = (0..4000).map(|n| format!("s-{n:04}")).collect();
    let body = batch(0, 3000);
    let (status, answer) = server.post("/api/v1/signins", "application/x-ndjson", body).await;
    assert_eq!(status, 200, "{answer}");
    let out = rsyslog.dir.join("out.log");
    for _ in 0..10_000 {
        let text = std::fs::read(&out).unwrap_or_default();
        if text.windows(7).filter(|w| w == b"|signIn").count() >= 100 {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    rsyslog.kill();
    let before = rsyslog.signin_ids().len();
    assert!(before < 3000, "the receiver was killed mid-stream ({before} of 3,000 had arrived)");
    let (status, answer) = server.post("/api/v1/signins", "application/x-ndjson", batch(3000, 1000)).await;
    assert_eq!(status, 200, "{answer}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    rsyslog.restart();
    wait_for("all 4,000 sign-ins", || rsyslog.signin_ids().len() >= 4000).await;
    assert_eq!(rsyslog.signin_ids(), expected, "every sign-in (first arrivals), in the order stored");
}

#[tokio::test(flavor = "multi_thread")]
async fn relp_delivery_survives_a_receiver_killed_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut rsyslog =
        Rsyslog::start(dir.path(), &format!("module(load=\"imrelp\")\ninput(type=\"imrelp\" port=\"{port}\")"), "");
    let config = ServerConfig {
        forward: vec![forward("siem", &format!("relp://127.0.0.1:{port}"), r#","hostname":"signet-test""#)],
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(config).await;
    survive_a_killed_receiver(&mut rsyslog, &server).await;

    // Header and payload as rsyslog parsed them.
    let messages = rsyslog.messages("signIn");
    let first = messages.iter().find(|m| sd_param(&m[4], "id") == "s-0001").unwrap();
    assert_eq!((first[0].as_str(), first[1].as_str(), first[2].as_str()), ("110", "signet-test", "signet"));
    assert_eq!((sd_param(&first[4], "org"), sd_param(&first[4], "kind")), ("default".into(), "signins".into()));
    let json: Value = serde_json::from_str(first[5].trim_start_matches('\u{feff}').trim()).unwrap();
    assert_eq!(json["record"]["userPrincipalName"], "ann@default.example");
    assert_eq!(json["id"], "s-0001");
    let failed = messages.iter().find(|m| sd_param(&m[4], "id") == "s-0007").unwrap();
    assert_eq!(failed[0], "108", "a failed sign-in is a warning (facility 13 * 8 + 4)");
    let (_, metrics) = server.get_text("/metrics").await;
    let delivered = metrics
        .lines()
        .find(|l| l.starts_with("signet_forward_delivered_total{destination=\"siem\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .unwrap();
    assert!(delivered >= 1000, "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_delivery_resends_what_a_killed_receiver_lost_and_speaks_cef() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut rsyslog =
        Rsyslog::start(dir.path(), &format!("module(load=\"imtcp\")\ninput(type=\"imtcp\" port=\"{port}\")"), "");
    let config = ServerConfig {
        forward: vec![forward("siem", &format!("tcp://127.0.0.1:{port}"), r#","format":"cef""#)],
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(config).await;
    survive_a_killed_receiver(&mut rsyslog, &server).await;

    let messages = rsyslog.messages("signIn");
    let failed = messages.iter().find(|m| sd_param(&m[4], "id") == "s-0014").unwrap();
    let cef = failed[5].trim_start_matches('\u{feff}').trim();
    assert!(cef.starts_with("CEF:0|Signet|Signet|"), "{cef}");
    assert!(cef.contains("|signIn:50126|Sign-in failed: "), "{cef}");
    assert!(cef.contains("externalId=s-0014 cs1Label=organization cs1=default"), "{cef}");
    assert!(cef.contains(" suser=ann@default.example"), "{cef}");
    assert!(cef.contains(" destinationServiceName=Pay|roll"), "{cef}");
}

/// A CA and a server certificate for 127.0.0.1, made with the openssl command.
fn certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let status = Command::new("openssl").args(args).current_dir(dir).stderr(Stdio::null()).status().unwrap();
        assert!(status.success(), "openssl {args:?}");
    };
    std::fs::write(
        dir.join("ext.cnf"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Signet test CA"],
    ]
    .concat());
    run(&[&["req"][..], &ec, &["-keyout", "key.pem", "-out", "req.csr", "-subj", "/CN=127.0.0.1"]].concat());
    run(&[
        "x509",
        "-req",
        "-in",
        "req.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_a_private_ca_and_udp_deliver() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let tls_port = free_port();
    let udp_port = free_port();
    let pem = |name: &str| dir.path().join(name).display().to_string();
    let tls = Rsyslog::start(
        &dir.path().join("tls"),
        &format!(
            "module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"anon\")\n\
             input(type=\"imtcp\" port=\"{tls_port}\")"
        ),
        &format!(
            "DefaultNetstreamDriver=\"gtls\" DefaultNetstreamDriverCAFile=\"{}\" DefaultNetstreamDriverCertFile=\"{}\" DefaultNetstreamDriverKeyFile=\"{}\"",
            pem("ca.pem"),
            pem("cert.pem"),
            pem("key.pem")
        ),
    );
    let udp = Rsyslog::start(
        &dir.path().join("udp"),
        &format!("module(load=\"imudp\")\ninput(type=\"imudp\" port=\"{udp_port}\" address=\"127.0.0.1\")"),
        "",
    );
    let ca = pem("ca.pem");
    let config = ServerConfig {
        forward: vec![
            forward("tls", &format!("tls://127.0.0.1:{tls_port}"), &format!(r#","ca_file":"{ca}","format":"ocsf""#)),
            // No CA given: the public web roots do not trust the test CA, so nothing goes.
            forward("untrusted", &format!("tls://127.0.0.1:{tls_port}"), ""),
            forward("udp", &format!("udp://127.0.0.1:{udp_port}"), ""),
        ],
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(config).await;
    let (status, answer) = server.post("/api/v1/signins", "application/x-ndjson", batch(0, 50)).await;
    assert_eq!(status, 200, "{answer}");
    wait_for("the TLS copies", || tls.signin_ids().len() >= 50).await;
    // UDP may lose datagrams in principle; on loopback with small batches it does not.
    wait_for("the UDP copies", || udp.signin_ids().len() >= 50).await;
    let expected: Vec<String> = (0..50).map(|n| format!("s-{n:04}")).collect();
    assert_eq!(tls.signin_ids(), expected);
    assert_eq!(udp.signin_ids(), expected);
    assert_eq!(tls.messages("signIn").len(), 50, "only the forwarder that trusts the CA got through");
    let ocsf = tls.messages("signIn").into_iter().find(|m| sd_param(&m[4], "id") == "s-0007").unwrap();
    let ocsf: Value = serde_json::from_str(ocsf[5].trim_start_matches('\u{feff}').trim()).unwrap();
    assert_eq!((ocsf["class_uid"].as_u64(), ocsf["status_id"].as_u64()), (Some(3002), Some(2)), "{ocsf}");
    let (_, metrics) = server.get_text("/metrics").await;
    let failures = metrics
        .lines()
        .find(|l| l.starts_with("signet_forward_failures_total{destination=\"untrusted\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .unwrap();
    assert!(failures > 0, "the untrusted connection fails and is retried: {metrics}");
}
