//! A small reader for the kernel's BTF (`/sys/kernel/btf/vmlinux` and module BTF).
//!
//! aya has no CO-RE relocations for Rust programs, so `tracer` reads the few struct offsets
//! its tracepoint programs need (`sk_buff.head`, `net_device.ifindex`, …) from the running
//! kernel's BTF and hands them to the programs as load-time constants. The same data names
//! the kernel's drop reasons (`enum skb_drop_reason` changes between kernels, so a table
//! compiled into the binary would be wrong somewhere) and tells `tracer doctor` which
//! functions and kfuncs exist.
//!
//! Only what those uses need is decoded: type records, member offsets through anonymous
//! structs/unions, enums and function names. Format: Documentation/bpf/btf.rst.

use std::{collections::HashMap, fs, path::Path};

use thiserror::Error;

const BTF_MAGIC: u16 = 0xeb9f;

mod btf_kind {
    pub const INT: u32 = 1;
    pub const PTR: u32 = 2;
    pub const ARRAY: u32 = 3;
    pub const STRUCT: u32 = 4;
    pub const UNION: u32 = 5;
    pub const ENUM: u32 = 6;
    pub const FWD: u32 = 7;
    pub const TYPEDEF: u32 = 8;
    pub const VOLATILE: u32 = 9;
    pub const CONST: u32 = 10;
    pub const RESTRICT: u32 = 11;
    pub const FUNC: u32 = 12;
    pub const FUNC_PROTO: u32 = 13;
    pub const VAR: u32 = 14;
    pub const DATASEC: u32 = 15;
    pub const FLOAT: u32 = 16;
    pub const DECL_TAG: u32 = 17;
    pub const TYPE_TAG: u32 = 18;
    pub const ENUM64: u32 = 19;
}

#[derive(Debug, Error)]
pub enum BtfError {
    #[error("cannot read BTF from {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("malformed BTF: {0}")]
    Malformed(&'static str),
    #[error("this kernel's BTF has no struct {0}")]
    NoStruct(String),
    #[error("this kernel's struct {strukt} has no member {member}")]
    NoMember { strukt: String, member: String },
    #[error("this kernel's BTF has no enum {0}")]
    NoEnum(String),
}

#[derive(Debug, Clone)]
struct Member {
    name: String,
    type_id: u32,
    bit_offset: u32,
}

#[derive(Debug, Clone)]
enum Type {
    /// STRUCT or UNION.
    Composite {
        members: Vec<Member>,
        size: u32,
    },
    Enum {
        name: String,
        values: Vec<(String, i64)>,
    },
    /// TYPEDEF and the modifiers: resolved through to the type they name.
    Alias {
        name: String,
        target: u32,
    },
    Func {
        name: String,
    },
    Other,
}

/// Parsed BTF: the base (vmlinux) or a module's split BTF layered on a base.
pub struct Btf {
    /// Index = type id; id 0 is `void`.
    types: Vec<Type>,
    /// The end of the base's string section, for split BTF offsets.
    strings: Vec<u8>,
    structs_by_name: HashMap<String, u32>,
}

impl Btf {
    /// The running kernel's BTF.
    pub fn vmlinux() -> Result<Self, BtfError> {
        Self::from_file(Path::new("/sys/kernel/btf/vmlinux"), None)
    }

    /// Reads BTF from a file; `base` is the vmlinux BTF when the file is a module's.
    pub fn from_file(path: &Path, base: Option<&Btf>) -> Result<Self, BtfError> {
        let data = fs::read(path).map_err(|source| BtfError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&data, base)
    }

    pub fn parse(data: &[u8], base: Option<&Btf>) -> Result<Self, BtfError> {
        let u16_at = |off: usize| -> Result<u16, BtfError> {
            data.get(off..off + 2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
                .ok_or(BtfError::Malformed("truncated header"))
        };
        let u32_at = |off: usize| -> Result<u32, BtfError> {
            data.get(off..off + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or(BtfError::Malformed("truncated header"))
        };
        if u16_at(0)? != BTF_MAGIC {
            return Err(BtfError::Malformed(
                "bad magic (only little-endian BTF is read)",
            ));
        }
        let hdr_len = u32_at(4)? as usize;
        let (type_off, type_len) = (u32_at(8)? as usize, u32_at(12)? as usize);
        let (str_off, str_len) = (u32_at(16)? as usize, u32_at(20)? as usize);
        let section = |off: usize, len: usize| {
            data.get(hdr_len + off..hdr_len + off + len)
                .ok_or(BtfError::Malformed("section outside the file"))
        };
        let type_data = section(type_off, type_len)?;
        let own_strings = section(str_off, str_len)?;

        let mut strings = base.map(|b| b.strings.clone()).unwrap_or_default();
        strings.extend_from_slice(own_strings);
        let mut types = base.map_or_else(|| vec![Type::Other], |b| b.types.clone());
        let mut structs_by_name = base.map(|b| b.structs_by_name.clone()).unwrap_or_default();

        let mut reader = Reader {
            data: type_data,
            pos: 0,
        };
        while reader.pos < type_data.len() {
            let name_off = reader.u32()?;
            let info = reader.u32()?;
            let size_or_type = reader.u32()?;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            let name = string_at(&strings, name_off);
            let ty = match kind {
                btf_kind::STRUCT | btf_kind::UNION => {
                    let mut members = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        let member_name = string_at(&strings, reader.u32()?);
                        let type_id = reader.u32()?;
                        let offset = reader.u32()?;
                        let bit_offset = if kind_flag {
                            offset & 0x00ff_ffff
                        } else {
                            offset
                        };
                        members.push(Member {
                            name: member_name,
                            type_id,
                            bit_offset,
                        });
                    }
                    if kind == btf_kind::STRUCT && !name.is_empty() {
                        // First definition wins; later ones are usually duplicates.
                        let id = u32::try_from(types.len())
                            .map_err(|_| BtfError::Malformed("too many types"))?;
                        structs_by_name.entry(name.clone()).or_insert(id);
                    }
                    Type::Composite {
                        members,
                        size: size_or_type,
                    }
                }
                btf_kind::ENUM => {
                    let mut values = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        let value_name = string_at(&strings, reader.u32()?);
                        let raw = reader.u32()?;
                        let value = if kind_flag {
                            i64::from(raw.cast_signed())
                        } else {
                            i64::from(raw)
                        };
                        values.push((value_name, value));
                    }
                    Type::Enum { name, values }
                }
                btf_kind::ENUM64 => {
                    let mut values = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        let value_name = string_at(&strings, reader.u32()?);
                        let lo = u64::from(reader.u32()?);
                        let hi = u64::from(reader.u32()?);
                        values.push((value_name, ((hi << 32) | lo).cast_signed()));
                    }
                    Type::Enum { name, values }
                }
                btf_kind::TYPEDEF
                | btf_kind::VOLATILE
                | btf_kind::CONST
                | btf_kind::RESTRICT
                | btf_kind::TYPE_TAG => Type::Alias {
                    name,
                    target: size_or_type,
                },
                btf_kind::FUNC => Type::Func { name },
                btf_kind::INT | btf_kind::VAR | btf_kind::DECL_TAG => {
                    reader.skip(4)?;
                    Type::Other
                }
                btf_kind::ARRAY => {
                    reader.skip(12)?;
                    Type::Other
                }
                btf_kind::FUNC_PROTO => {
                    reader.skip(8 * vlen)?;
                    Type::Other
                }
                btf_kind::DATASEC => {
                    reader.skip(12 * vlen)?;
                    Type::Other
                }
                btf_kind::PTR | btf_kind::FWD | btf_kind::FLOAT => Type::Other,
                _ => return Err(BtfError::Malformed("unknown type kind")),
            };
            types.push(ty);
        }
        Ok(Self {
            types,
            strings,
            structs_by_name,
        })
    }

    /// Byte offset of `path` (e.g. `["nd_net", "net"]`) inside `struct strukt`, looking
    /// through anonymous structs and unions the way C does.
    pub fn member_offset(&self, strukt: &str, path: &[&str]) -> Result<u32, BtfError> {
        let bits = self.member_bit_offset(strukt, path)?;
        if bits % 8 != 0 {
            return Err(BtfError::Malformed("member is a bitfield"));
        }
        Ok(bits / 8)
    }

    /// Bit offset of `path` inside `struct strukt`; for a bitfield (`sk_buff.cloned`), where
    /// its first bit is.
    pub fn member_bit_offset(&self, strukt: &str, path: &[&str]) -> Result<u32, BtfError> {
        let mut type_id = *self
            .structs_by_name
            .get(strukt)
            .ok_or_else(|| BtfError::NoStruct(strukt.to_owned()))?;
        let mut bits = 0;
        for (depth, member) in path.iter().enumerate() {
            let no_member = || BtfError::NoMember {
                strukt: strukt.to_owned(),
                member: path[..=depth].join("."),
            };
            let (found_bits, found_type) =
                self.find_member(type_id, member).ok_or_else(no_member)?;
            bits += found_bits;
            type_id = found_type;
        }
        Ok(bits)
    }

    /// `sizeof(struct strukt)`.
    pub fn struct_size(&self, strukt: &str) -> Result<u32, BtfError> {
        let type_id = *self
            .structs_by_name
            .get(strukt)
            .ok_or_else(|| BtfError::NoStruct(strukt.to_owned()))?;
        match self.resolve(type_id) {
            Some(Type::Composite { size, .. }) => Ok(*size),
            _ => Err(BtfError::NoStruct(strukt.to_owned())),
        }
    }

    fn resolve(&self, mut type_id: u32) -> Option<&Type> {
        loop {
            match self.types.get(type_id as usize)? {
                Type::Alias { target, .. } => type_id = *target,
                other => return Some(other),
            }
        }
    }

    /// Finds a named member, descending into anonymous members; returns its bit offset
    /// and type id.
    fn find_member(&self, type_id: u32, wanted: &str) -> Option<(u32, u32)> {
        let Some(Type::Composite { members, .. }) = self.resolve(type_id) else {
            return None;
        };
        for member in members {
            if member.name == wanted {
                return Some((member.bit_offset, member.type_id));
            }
            if member.name.is_empty()
                && let Some((inner_bits, inner_type)) = self.find_member(member.type_id, wanted)
            {
                return Some((member.bit_offset + inner_bits, inner_type));
            }
        }
        None
    }

    /// Name → value of every enumerator of `enum name`.
    pub fn enum_values(&self, name: &str) -> Result<Vec<(String, i64)>, BtfError> {
        self.types
            .iter()
            .find_map(|ty| match ty {
                Type::Enum { name: n, values } if n == name => Some(values.clone()),
                _ => None,
            })
            .ok_or_else(|| BtfError::NoEnum(name.to_owned()))
    }

    /// Whether a function (or kfunc) of this name is described.
    pub fn has_function(&self, name: &str) -> bool {
        self.types
            .iter()
            .any(|ty| matches!(ty, Type::Func { name: n } if n == name))
    }

    /// Whether the tracepoint `name` can take a `tp_btf` program: the kernel describes
    /// each one with a `btf_trace_<name>` typedef.
    pub fn has_tracepoint(&self, name: &str) -> bool {
        let typedef = format!("btf_trace_{name}");
        self.types
            .iter()
            .any(|ty| matches!(ty, Type::Alias { name: n, .. } if *n == typedef))
    }
}

fn string_at(strings: &[u8], offset: u32) -> String {
    let tail = strings.get(offset as usize..).unwrap_or_default();
    let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
    String::from_utf8_lossy(&tail[..end]).into_owned()
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u32(&mut self) -> Result<u32, BtfError> {
        let bytes = self
            .data
            .get(self.pos..self.pos + 4)
            .ok_or(BtfError::Malformed("truncated type section"))?;
        self.pos += 4;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn skip(&mut self, n: usize) -> Result<(), BtfError> {
        if self.pos + n > self.data.len() {
            return Err(BtfError::Malformed("truncated type section"));
        }
        self.pos += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a BTF blob by hand: `struct outer { int a; union { int b; struct { int c; }; }; }`
    /// and `enum e { X = 1, Y = 7 }`.
    fn sample() -> Vec<u8> {
        let strings = b"\0int\0outer\0a\0b\0c\0e\0X\0Y\0f\0".to_vec();
        let off = |s: &str| {
            let needle = format!("\0{s}\0");
            u32::try_from(
                strings
                    .windows(needle.len())
                    .position(|w| w == needle.as_bytes())
                    .unwrap()
                    + 1,
            )
            .unwrap()
        };
        let mut types = Vec::new();
        let mut push = |words: &[u32]| {
            words
                .iter()
                .for_each(|w| types.extend_from_slice(&w.to_le_bytes()))
        };
        // 1: int (4 bytes)
        push(&[off("int"), btf_kind::INT << 24, 4, 32]);
        // 2: anonymous struct { int c; } size 4
        push(&[0, (btf_kind::STRUCT << 24) | 1, 4, off("c"), 1, 0]);
        // 3: anonymous union { int b; struct 2; } size 4
        push(&[0, (btf_kind::UNION << 24) | 2, 4, off("b"), 1, 0, 0, 2, 0]);
        // 4: struct outer { int a @0; union 3 @32 }
        push(&[
            off("outer"),
            (btf_kind::STRUCT << 24) | 2,
            8,
            off("a"),
            1,
            0,
            0,
            3,
            32,
        ]);
        // 5: enum e
        push(&[
            off("e"),
            (btf_kind::ENUM << 24) | 2,
            4,
            off("X"),
            1,
            off("Y"),
            7,
        ]);
        // 6: func f
        push(&[off("f"), btf_kind::FUNC << 24, 0]);
        let mut blob = Vec::new();
        blob.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        blob.extend_from_slice(&[1, 0]);
        for word in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            blob.extend_from_slice(&word.to_le_bytes());
        }
        blob.extend_from_slice(&types);
        blob.extend_from_slice(&strings);
        blob
    }

    #[test]
    fn finds_members_through_anonymous_unions_and_structs() {
        let btf = Btf::parse(&sample(), None).unwrap();
        assert_eq!(btf.member_offset("outer", &["a"]).unwrap(), 0);
        assert_eq!(btf.member_offset("outer", &["b"]).unwrap(), 4);
        assert_eq!(btf.member_offset("outer", &["c"]).unwrap(), 4);
        assert!(matches!(
            btf.member_offset("outer", &["zz"]),
            Err(BtfError::NoMember { .. })
        ));
        assert!(matches!(
            btf.member_offset("nope", &["a"]),
            Err(BtfError::NoStruct(_))
        ));
    }

    #[test]
    fn reads_enums_and_functions() {
        let btf = Btf::parse(&sample(), None).unwrap();
        assert_eq!(
            btf.enum_values("e").unwrap(),
            vec![("X".to_owned(), 1), ("Y".to_owned(), 7)]
        );
        assert!(btf.has_function("f"));
        assert!(!btf.has_function("g"));
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert!(Btf::parse(b"", None).is_err());
        assert!(Btf::parse(&[0x9f, 0xeb, 1, 0, 24, 0, 0, 0], None).is_err());
        let mut blob = sample();
        blob.truncate(blob.len() - 20);
        assert!(Btf::parse(&blob, None).is_err());
    }

    #[test]
    fn reads_the_running_kernels_sk_buff_when_present() {
        let Ok(btf) = Btf::vmlinux() else {
            eprintln!("skipped: /sys/kernel/btf/vmlinux is not readable here");
            return;
        };
        assert!(btf.member_offset("sk_buff", &["head"]).is_ok());
        assert!(btf.member_offset("net_device", &["ifindex"]).is_ok());
        let reasons = btf.enum_values("skb_drop_reason").unwrap();
        assert!(
            reasons
                .iter()
                .any(|(n, _)| n == "SKB_DROP_REASON_NO_SOCKET")
        );
    }
}
