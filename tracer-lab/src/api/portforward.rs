//! `pods/{name}/portforward` over WebSocket, as the API server and kubelet serve it to
//! kube-rs (`Api::<Pod>::portforward`): subprotocol `v4.channel.k8s.io`, one port per
//! request here; every binary message starts with a channel byte (data `2i`, error
//! `2i+1` for the i-th port), and the server opens each channel with a message holding
//! the port number (little-endian). Data then flows both ways between the client and
//! the Pod's port until either side closes.

use std::{
    io::{self, Read, Write},
    net::{Shutdown, SocketAddr, TcpStream},
    sync::{Arc, Mutex, PoisonError},
    thread,
    time::Duration,
};

use super::{
    http::Request,
    websocket::{self, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG},
};

pub const PROTOCOL: &str = "v4.channel.k8s.io";

/// How long the Pod's port may take to accept.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A port-forward the routes accepted: where the Pod serves the port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub port: u16,
    pub target: Result<SocketAddr, String>,
}

/// Why the upgrade cannot happen, before any WebSocket: a 400 message.
pub fn check_upgrade(request: &Request) -> Result<(), String> {
    let upgrade = request.header("upgrade").unwrap_or_default();
    if !upgrade.eq_ignore_ascii_case("websocket") || request.header("sec-websocket-key").is_none() {
        return Err(
            "port-forward needs a WebSocket upgrade (the lab does not speak SPDY)".to_owned(),
        );
    }
    if !offered_protocols(request).any(|p| p == PROTOCOL) {
        return Err(format!("port-forward needs subprotocol {PROTOCOL}"));
    }
    Ok(())
}

fn offered_protocols(request: &Request) -> impl Iterator<Item = &str> {
    request
        .header("sec-websocket-protocol")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
}

/// Answers the upgrade, then carries the port's bytes until either side closes or
/// `stopping` says the server stops. `reader` is the client socket's read side (woken
/// regularly, as the server's reads are).
pub fn serve<R: Read>(
    request: &Request,
    forward: &Forward,
    mut reader: R,
    writer: TcpStream,
) -> io::Result<()> {
    let key = request.header("sec-websocket-key").unwrap_or_default();
    let mut head = String::from("HTTP/1.1 101 Switching Protocols\r\n");
    head.push_str("Upgrade: websocket\r\nConnection: Upgrade\r\n");
    head.push_str(&format!(
        "Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: {PROTOCOL}\r\n\r\n",
        websocket::accept_key(key)
    ));
    let client = Arc::new(Mutex::new(writer));
    let send = |opcode: u8, parts: &[&[u8]]| -> io::Result<()> {
        let mut w = client.lock().unwrap_or_else(PoisonError::into_inner);
        websocket::write_frame(&mut *w, opcode, parts)
    };
    client
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .write_all(head.as_bytes())?;
    let port = forward.port.to_le_bytes();
    send(OP_BINARY, &[&[0], &port])?;
    send(OP_BINARY, &[&[1], &port])?;
    let pod = match forward.target.clone().and_then(|addr| {
        TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
            .map_err(|e| format!("connect to {addr}: {e}"))
    }) {
        Ok(pod) => pod,
        Err(message) => {
            let text = format!("error forwarding port {} to pod: {message}", forward.port);
            send(OP_BINARY, &[&[1], text.as_bytes()])?;
            return send(OP_CLOSE, &[]);
        }
    };
    let _ = pod.set_nodelay(true);
    // The Pod's bytes to the client, on their own thread.
    let from_pod = {
        let mut pod = pod.try_clone()?;
        let client = client.clone();
        thread::Builder::new()
            .name("lab-api-forward".to_owned())
            .spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match pod.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let mut w = client.lock().unwrap_or_else(PoisonError::into_inner);
                    if websocket::write_frame(&mut *w, OP_BINARY, &[&[0], &buf[..n]]).is_err() {
                        break;
                    }
                }
                // The Pod closed its end: so does the client's WebSocket.
                let mut w = client.lock().unwrap_or_else(PoisonError::into_inner);
                let _ = websocket::write_frame(&mut *w, OP_CLOSE, &[]);
                let _ = w.shutdown(Shutdown::Both);
            })?
    };
    // The client's bytes to the Pod, here.
    let mut to_pod = pod;
    while let Ok(message) = websocket::read_message(&mut reader) {
        match message.opcode {
            OP_CLOSE => break,
            OP_PING => {
                let _ = send(OP_PONG, &[&message.payload]);
            }
            OP_BINARY => {
                if let Some((0, data)) = message.payload.split_first()
                    && to_pod.write_all(data).is_err()
                {
                    break;
                }
            }
            _ => {}
        }
    }
    // The client went: the Pod's connection ends, which ends the other thread.
    let _ = to_pod.shutdown(Shutdown::Both);
    let _ = from_pod.join();
    Ok(())
}
