//! Fuzzes the recording reader: any bytes must end in a record stream, an error or a
//! reported cut — never a panic, a hang or an allocation bomb.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer::record::reader::{Reader, Step};

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = Reader::new(data, "fuzz") else { return };
    // Every step consumes at least a byte (a record, or a damaged stretch skipped), so this
    // bounds the loop.
    for _ in 0..=data.len() {
        match reader.next_step() {
            Step::Record(_) | Step::Skipped { .. } => {}
            Step::End { .. } | Step::Cut { .. } => return,
        }
    }
    panic!("the reader did not finish a {}-byte input", data.len());
});
