//! Unpacks a function's deployment package (a zip archive) into its task directory, as Lambda
//! does into `/var/task`: stored and deflated entries, Unix permissions kept (a `bootstrap`
//! packed without them is made executable). No ZIP64: a package over 4 GiB is not a Lambda
//! package.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path};

#[derive(Debug, thiserror::Error)]
pub enum ZipError {
    #[error("the package is not a zip archive: {0}")]
    Format(&'static str),
    #[error("entry {entry} of the package: {reason}")]
    Entry { entry: String, reason: String },
    #[error("writing the package's files: {0}")]
    Io(#[from] std::io::Error),
}

const EOCD: u32 = 0x0605_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const LOCAL: u32 = 0x0403_4b50;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|s| u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// One file of the archive.
struct Entry {
    name: String,
    method: u16,
    compressed: usize,
    size: usize,
    mode: Option<u32>,
    local: usize,
}

fn entries(zip: &[u8]) -> Result<Vec<Entry>, ZipError> {
    let short = ZipError::Format("truncated");
    // The end-of-central-directory record: within the last 64 KiB + 22 bytes.
    let floor = zip.len().saturating_sub(65_557);
    let eocd = (floor..zip.len().saturating_sub(21))
        .rev()
        .find(|&i| u32_at(zip, i) == Some(EOCD))
        .ok_or(ZipError::Format("no end of central directory"))?;
    let count = usize::from(u16_at(zip, eocd + 10).ok_or(ZipError::Format("truncated"))?);
    let mut at = u32_at(zip, eocd + 16).ok_or(short)? as usize;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let field16 = |o: usize| {
            u16_at(zip, at + o)
                .map(usize::from)
                .ok_or(ZipError::Format("truncated"))
        };
        let field32 = |o: usize| u32_at(zip, at + o).ok_or(ZipError::Format("truncated"));
        if field32(0)? != CENTRAL {
            return Err(ZipError::Format("bad central directory entry"));
        }
        let (name_len, extra_len, comment_len) = (field16(28)?, field16(30)?, field16(32)?);
        let name = zip
            .get(at + 46..at + 46 + name_len)
            .ok_or(ZipError::Format("truncated"))?;
        let made_on_unix = field16(4)? >> 8 == 3;
        let attributes = field32(38)?;
        let (compressed, size, local) = (field32(20)?, field32(24)?, field32(42)?);
        if [compressed, size, local].contains(&u32::MAX) {
            return Err(ZipError::Format("ZIP64 archives are not supported"));
        }
        out.push(Entry {
            name: String::from_utf8_lossy(name).into_owned(),
            method: u16::try_from(field16(10)?).unwrap_or(u16::MAX),
            compressed: compressed as usize,
            size: size as usize,
            mode: (made_on_unix && attributes >> 16 != 0).then_some((attributes >> 16) & 0o7777),
            local: local as usize,
        });
        at += 46 + name_len + extra_len + comment_len;
    }
    Ok(out)
}

fn data<'z>(zip: &'z [u8], e: &Entry) -> Result<Vec<u8>, ZipError> {
    let bad = |reason: &str| ZipError::Entry {
        entry: e.name.clone(),
        reason: reason.to_owned(),
    };
    if u32_at(zip, e.local) != Some(LOCAL) {
        return Err(bad("no local header"));
    }
    let name_len = usize::from(u16_at(zip, e.local + 26).ok_or_else(|| bad("truncated"))?);
    let extra_len = usize::from(u16_at(zip, e.local + 28).ok_or_else(|| bad("truncated"))?);
    let start = e.local + 30 + name_len + extra_len;
    let raw: &'z [u8] = zip.get(start..start + e.compressed).ok_or_else(|| bad("truncated"))?;
    let bytes = match e.method {
        0 => raw.to_vec(),
        8 => {
            let mut out = Vec::with_capacity(e.size);
            flate2::read::DeflateDecoder::new(raw)
                .read_to_end(&mut out)
                .map_err(|err| bad(&format!("does not inflate: {err}")))?;
            out
        }
        _ => return Err(bad("compression method other than stored or deflate")),
    };
    if bytes.len() != e.size {
        return Err(bad("unpacked size differs from the directory's"));
    }
    Ok(bytes)
}

/// Unpacks `zip` into `dir` (which must exist). Entries whose names leave the directory are
/// refused.
pub fn unpack(zip: &[u8], dir: &Path) -> Result<Vec<String>, ZipError> {
    let mut names = Vec::new();
    for e in entries(zip)? {
        let rel = Path::new(&e.name);
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(ZipError::Entry {
                entry: e.name.clone(),
                reason: "leaves the task directory".into(),
            });
        }
        let path = dir.join(rel);
        if e.name.ends_with('/') {
            std::fs::create_dir_all(&path)?;
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, data(zip, &e)?)?;
        let mode = match e.mode {
            Some(m) => m,
            None if e.name == "bootstrap" => 0o755,
            None => 0o644,
        };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        names.push(e.name);
    }
    Ok(names)
}

/// A zip archive of one file, `name`, stored with mode 0755 (deflated): what a deployment
/// package of one bootstrap looks like.
pub fn single_file(name: &str, bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut deflated = Vec::new();
    {
        let mut enc = flate2::write::DeflateEncoder::new(&mut deflated, flate2::Compression::fast());
        // Writing to a Vec cannot fail.
        let _ = enc.write_all(bytes);
        let _ = enc.finish();
    }
    let crc = crc32(bytes);
    let size = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    let csize = u32::try_from(deflated.len()).unwrap_or(u32::MAX);
    let name_len = u16::try_from(name.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(deflated.len() + 128);
    let common = |out: &mut Vec<u8>| {
        out.extend_from_slice(&20u16.to_le_bytes()); // version needed
        out.extend_from_slice(&0u16.to_le_bytes()); // flags
        out.extend_from_slice(&8u16.to_le_bytes()); // deflate
        out.extend_from_slice(&0u32.to_le_bytes()); // time and date
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&csize.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // extra
    };
    out.extend_from_slice(&LOCAL.to_le_bytes());
    common(&mut out);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&deflated);
    let central = out.len();
    out.extend_from_slice(&CENTRAL.to_le_bytes());
    out.extend_from_slice(&((3u16 << 8) | 20).to_le_bytes()); // made by: Unix
    common(&mut out);
    out.extend_from_slice(&[0u8; 6]); // comment length, disk, internal attributes
    out.extend_from_slice(&((0o100_755u32) << 16).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // local header at 0
    out.extend_from_slice(name.as_bytes());
    let central_len = out.len() - central;
    out.extend_from_slice(&EOCD.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&u32::try_from(central_len).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&u32::try_from(central).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_file_package_unpacks_executable() {
        let dir = tempdir();
        let zip = single_file("bootstrap", b"#!/bin/sh\necho hi\n");
        assert_eq!(unpack(&zip, &dir).unwrap(), ["bootstrap"]);
        let path = dir.join("bootstrap");
        assert_eq!(std::fs::read(&path).unwrap(), b"#!/bin/sh\necho hi\n");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o755);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn crc_matches_the_known_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn garbage_is_not_a_package() {
        assert!(matches!(
            entries(b"not a zip at all, clearly"),
            Err(ZipError::Format(_))
        ));
    }

    fn tempdir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("lambda-runner-zip-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
