//! Session recordings: what `tracer follow --record FILE` writes and `tracer replay` /
//! `tracer export` read. The format is documented in `docs/recording-format.md`.
//!
//! A recording keeps the *raw observations* (not finished journeys), so a better
//! correlator later explains old recordings better, plus everything needed to name them
//! without the cluster or the machine: the Kubernetes objects, every traced namespace's
//! interfaces, addresses, routes, MTUs and iptables rules, the kernel's drop-reason names,
//! and the loss counters. It is a sequence of self-checking records (length, type, payload,
//! CRC-32), appended as the session goes, so a file cut by SIGKILL or a full disk is read up
//! to its last complete record and the reader says where and why it stopped.

pub mod codec;
pub mod crc32;
pub mod format;
pub mod reader;
pub mod writer;

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::{
        format::{Meta, Record},
        reader::{Reader, Step},
        writer::Recorder,
    };
    use crate::{
        journey::observation::{Hook, Observation, Tuple},
        k8s::ClusterObjects,
        topology::Topology,
    };

    fn observation(i: u16) -> Observation {
        Observation {
            ts_ns: 1_000_000 + u64::from(i) * 1000,
            cpu: 0,
            hook: Hook::Egress,
            netns_cookie: 7,
            ifindex: 2,
            tuple: Tuple {
                proto: 1,
                src: Ipv4Addr::new(10, 244, 102, 137),
                dst: Ipv4Addr::new(10, 244, 184, 84),
                sport: 0,
                dport: 0,
            },
            ip_id: i,
            ip_len: 84,
            ttl: 64,
            dont_fragment: true,
            later_fragment: false,
            tcp_seq: 0,
            tcp_ack: 0,
            tcp_flags: 0,
            icmp_type: 8,
            icmp_code: 0,
            icmp_id: 1,
            icmp_seq: i,
            outer: None,
            drop_reason: 0,
            skb_len: 98,
            mark: 0,
        }
    }

    /// A small but complete recording, written by the real writer.
    pub fn sample_recording(path: &std::path::Path, batches: u16) {
        let meta = Meta {
            tracer_version: "test".into(),
            created_at: "2026-11-26T00:00:00Z".into(),
            hostname: "test".into(),
            command: vec!["tracer".into()],
            following: "a → b".into(),
            names_from: "test".into(),
            wall_offset_ns: 0,
            from_ips: vec![Ipv4Addr::new(10, 244, 102, 137)],
            to_ips: vec![Ipv4Addr::new(10, 244, 184, 84)],
            snap_len: 0,
        };
        let mut recorder = Recorder::create(
            path,
            &meta,
            &ClusterObjects::default(),
            &Topology::default(),
            &[(2, "NO_SOCKET".into())],
        )
        .unwrap();
        for b in 0..batches {
            recorder.observations((0..10).map(|i| observation(b * 10 + i)).collect());
        }
        recorder.loss(3, 0);
        recorder.finish().unwrap();
    }

    fn read_all(path: &std::path::Path) -> (usize, Step) {
        let mut reader = match Reader::open(path) {
            Ok(r) => r,
            Err(_) => return (0, Step::End { clean: false }),
        };
        let mut observations = 0;
        loop {
            match reader.next_step() {
                Step::Record(Record::Observations(batch)) => observations += batch.len(),
                Step::Record(_) => {}
                end => return (observations, end),
            }
        }
    }

    #[test]
    fn a_complete_recording_reads_back_cleanly_and_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let path = std::env::temp_dir().join(format!("tracer-rec-{}.trace", std::process::id()));
        sample_recording(&path, 5);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (observations, end) = read_all(&path);
        assert_eq!(observations, 50);
        assert!(matches!(end, Step::End { clean: true }), "{end:?}");
        let _ = std::fs::remove_file(&path);
    }

    /// Every truncation and many corruptions of a real recording: the reader recovers every
    /// complete record before the damage and never panics or loops.
    #[test]
    fn damaged_recordings_replay_up_to_the_damage() {
        let path =
            std::env::temp_dir().join(format!("tracer-rec-cut-{}.trace", std::process::id()));
        sample_recording(&path, 3);
        let bytes = std::fs::read(&path).unwrap();
        let damaged = path.with_extension("damaged");
        let mut last_observations = 0;
        for len in (0..bytes.len()).step_by(7) {
            std::fs::write(&damaged, &bytes[..len]).unwrap();
            let (observations, end) = read_all(&damaged);
            assert!(
                observations >= last_observations,
                "a longer prefix never yields fewer observations"
            );
            last_observations = observations;
            assert!(
                !matches!(end, Step::End { clean: true }),
                "a cut file is never reported clean"
            );
        }
        for at in (16..bytes.len()).step_by(13) {
            let mut corrupt = bytes.clone();
            corrupt[at] ^= 0x5a;
            std::fs::write(&damaged, &corrupt).unwrap();
            let (_, end) = read_all(&damaged);
            assert!(
                matches!(end, Step::Cut { .. } | Step::End { clean: false }),
                "flip at {at}: {end:?}"
            );
        }
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(&damaged);
    }
}
