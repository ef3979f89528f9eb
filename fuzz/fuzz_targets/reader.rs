//! Fuzzes the recording reader: any bytes must end in a record stream, an error or a
//! reported cut — never a panic, a hang or an allocation bomb. The body is the library's
//! own `read_to_the_end`, which the unit tests also run over this target's corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tracer::record::reader::read_to_the_end(data));
