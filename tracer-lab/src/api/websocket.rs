//! Just enough WebSocket (RFC 6455) for the server side of `pods/portforward`: the
//! handshake's accept key, and frames read from a client (masked, possibly fragmented)
//! and written to it (unmasked). Sizes are bounded; nothing here trusts the peer.

use std::io::{self, Read, Write};

use sha1::{Digest, Sha1};

/// Largest message accepted from a client (the agent's reader sends almost nothing).
const MAX_MESSAGE: usize = 1024 * 1024;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.trim().as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64(&sha.finalize())
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            out.push(if i <= chunk.len() {
                char::from(ALPHABET[(n >> shift & 63) as usize])
            } else {
                '='
            });
        }
    }
    out
}

/// One whole message from the client: its opcode (of the first frame) and payload.
#[derive(Debug, PartialEq, Eq)]
pub struct Message {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

fn read_frame<R: Read>(r: &mut R, budget: usize) -> io::Result<(bool, u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    r.read_exact(&mut head)?;
    let fin = head[0] & 0x80 != 0;
    let opcode = head[0] & 0x0F;
    let masked = head[1] & 0x80 != 0;
    let length = match head[1] & 0x7F {
        126 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b)?;
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            r.read_exact(&mut b)?;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    if !masked {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a client's WebSocket frame must be masked",
        ));
    }
    let length = usize::try_from(length)
        .ok()
        .filter(|&l| l <= budget)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "WebSocket message too large"))?;
    let mut mask = [0u8; 4];
    r.read_exact(&mut mask)?;
    let mut payload = vec![0u8; length];
    r.read_exact(&mut payload)?;
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
    Ok((fin, opcode, payload))
}

/// Reads one message, joining fragments; control frames between fragments are returned
/// on their own (RFC 6455 §5.4 lets them interleave).
pub fn read_message<R: Read>(r: &mut R) -> io::Result<Message> {
    let (fin, opcode, mut payload) = read_frame(r, MAX_MESSAGE)?;
    if fin || opcode >= OP_CLOSE {
        return Ok(Message { opcode, payload });
    }
    loop {
        let (fin, next, more) = read_frame(r, MAX_MESSAGE - payload.len())?;
        if next >= OP_CLOSE {
            // A control frame inside a fragmented message: only a close matters here.
            if next == OP_CLOSE {
                return Ok(Message {
                    opcode: next,
                    payload: more,
                });
            }
            continue;
        }
        if next != OP_CONTINUATION {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a new WebSocket message inside a fragmented one",
            ));
        }
        payload.extend_from_slice(&more);
        if fin {
            return Ok(Message { opcode, payload });
        }
    }
}

/// Writes one unmasked frame holding `parts` back to back (a channel byte and its data).
pub fn write_frame<W: Write>(w: &mut W, opcode: u8, parts: &[&[u8]]) -> io::Result<()> {
    let length: usize = parts.iter().map(|p| p.len()).sum();
    let mut head = Vec::with_capacity(10 + length);
    head.push(0x80 | opcode);
    match length {
        0..=125 => head.push(length as u8),
        126..=0xFFFF => {
            head.push(126);
            head.extend_from_slice(&(length as u16).to_be_bytes());
        }
        _ => {
            head.push(127);
            head.extend_from_slice(&(length as u64).to_be_bytes());
        }
    }
    for part in parts {
        head.extend_from_slice(part);
    }
    w.write_all(&head)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_of_the_rfc_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
    }

    fn masked(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut frame = vec![if fin { 0x80 } else { 0 } | opcode];
        if payload.len() < 126 {
            frame.push(0x80 | payload.len() as u8);
        } else {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        frame
    }

    #[test]
    fn reads_masked_and_fragmented_messages() {
        let mut wire = masked(false, OP_BINARY, &[0, 1, 2]);
        wire.extend(masked(false, OP_PING, b"hi"));
        wire.extend(masked(true, OP_CONTINUATION, &[3; 300]));
        wire.extend(masked(true, OP_CLOSE, &[]));
        let mut r = &wire[..];
        let first = read_message(&mut r).unwrap();
        assert_eq!(first.opcode, OP_BINARY);
        assert_eq!(first.payload.len(), 303);
        assert_eq!(&first.payload[..4], &[0, 1, 2, 3]);
        assert_eq!(read_message(&mut r).unwrap().opcode, OP_CLOSE);
        assert!(read_message(&mut r).is_err());
    }

    #[test]
    fn refuses_unmasked_and_oversized_frames() {
        let unmasked = [0x82, 1, 7];
        assert!(read_message(&mut &unmasked[..]).is_err());
        let mut huge = vec![0x82, 0x80 | 127];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(read_message(&mut &huge[..]).is_err());
    }

    #[test]
    fn writes_every_length_form() {
        for length in [0, 125, 126, 65535, 65536] {
            let data = vec![9u8; length];
            let mut out = Vec::new();
            write_frame(&mut out, OP_BINARY, &[&[0], &data]).unwrap();
            let header = match length + 1 {
                0..=125 => 2,
                126..=65535 => 4,
                _ => 10,
            };
            assert_eq!(out.len(), header + length + 1);
            assert_eq!(out[0], 0x82);
        }
    }
}
