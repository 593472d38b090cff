//! Yarn Berry's cache zip of an npm tarball, rebuilt natively and byte for byte, so that the
//! lockfile's `checksum` (the sha512 of that zip, not of the tarball) can be verified and the
//! bundle can carry a ready Yarn cache.
//!
//! What Yarn 4 does (`@yarnpkg/core` `tgzUtils.extractArchiveTo` into an `@yarnpkg/libzip`
//! `ZipFS`, compression level 0, the default since Yarn 4, cache key `10c0`):
//! - each tar entry in order: skipped when its path is absolute, has a `..` segment or no more
//!   segments than the one stripped (`package/`); the path is normalized and put under
//!   `node_modules/<name>/`;
//! - a directory or a file with any execute bit gets mode 0755, any other file 0644;
//!   hard links and other types are skipped;
//! - every missing parent directory is added (mode 040755) as it is first needed, in that
//!   order; a file written twice keeps its first place and takes the last content;
//! - libzip writes every entry stored (method 0), at the fixed time 1984-06-22 21:50:00,
//!   version needed 1.0 for files and 2.0 for directories, "made by" UNIX 6.3, the mode in
//!   the external attributes, no extra fields, no comment.
//!
//! Measured against the real Yarn 4.18.1's cache on 341 packages of registry.npmjs.org
//! (scoped ones, executables, tarballs with duplicate entries): all byte-identical. What this
//! does not rebuild (zip64 sizes, a directory or link entry twice) is an
//! [`ZipError::Unreproducible`], never a guess. A name that is not ASCII is marked UTF-8 (general
//! purpose bit 11) and a symbolic link is an entry of mode 0120777 holding its target, as libzip
//! writes them (each checked against Yarn 4.18.1 on a tarball of its own).

use common::{Classify, ErrorKind};
use sha2::{Digest as _, Sha512};
use std::collections::HashMap;
use std::io::Read;

/// 1984-06-22 21:50:00 (Yarn's `SAFE_TIME`, 456789000) as MS-DOS time and date.
const DOS_TIME: u16 = 0xae40;
const DOS_DATE: u16 = 0x08d6;
/// Bound on what one tarball may unpack to (its files are held while the zip is written).
pub const MAX_UNPACKED_BYTES: u64 = 512 << 20;

/// One conversion at a time in the process: each holds a package's unpacked files, and the
/// fetches run many checks at once (a hostile tarball could otherwise multiply the bound).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
const MAX_ENTRIES: usize = 0xffff;

#[derive(Debug, thiserror::Error)]
pub enum ZipError {
    #[error("The tarball of {label} cannot be read: {reason}")]
    BadTarball { label: String, reason: String },
    #[error("Larder cannot rebuild Yarn's cache zip of {label} ({reason}), so it cannot verify it against the lockfile's checksum")]
    Unreproducible { label: String, reason: String },
}

impl Classify for ZipError {
    fn kind(&self) -> ErrorKind {
        match self {
            ZipError::BadTarball { .. } => ErrorKind::InvalidChecksum,
            ZipError::Unreproducible { .. } => ErrorKind::UnsupportedFeature,
        }
    }
}

struct ZipEntry {
    name: String,
    /// `st_mode` (type and permissions)
    mode: u32,
    /// None for a directory
    data: Option<Vec<u8>>,
}

/// The cache zip Yarn 4 (compression level 0) makes of the npm tarball `tgz` of the package
/// `name` (`@scope/name` or `name`).
pub fn convert_tgz(tgz: &[u8], name: &str, label: &str) -> Result<Vec<u8>, ZipError> {
    let mut out = Vec::new();
    convert_tgz_to(tgz, name, label, &mut out)?;
    Ok(out)
}

/// The sha512 hex of [`convert_tgz`]'s zip, which is not kept.
pub fn zip_sha512(tgz: &[u8], name: &str, label: &str) -> Result<String, ZipError> {
    convert_tgz_hashed(tgz, name, label, &mut std::io::sink())
}

/// [`convert_tgz_to`], and the sha512 hex of what it wrote.
pub fn convert_tgz_hashed(
    tgz: &[u8],
    name: &str,
    label: &str,
    out: &mut dyn std::io::Write,
) -> Result<String, ZipError> {
    let mut tee = HashingWriter {
        out,
        hash: Sha512::new(),
    };
    convert_tgz_to(tgz, name, label, &mut tee)?;
    Ok(hex::encode(tee.hash.finalize()))
}

struct HashingWriter<'a> {
    out: &'a mut dyn std::io::Write,
    hash: Sha512,
}

impl std::io::Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// [`convert_tgz`] written to `out` as it is made.
pub fn convert_tgz_to(
    tgz: &[u8],
    name: &str,
    label: &str,
    out: &mut dyn std::io::Write,
) -> Result<(), ZipError> {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bad = |reason: String| ZipError::BadTarball {
        label: label.into(),
        reason,
    };
    let unrepro = |reason: String| ZipError::Unreproducible {
        label: label.into(),
        reason,
    };
    let prefix = format!("node_modules/{name}");
    let mut entries: Vec<ZipEntry> = Vec::new();
    // entry name (directories with their trailing `/`) → index
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut unpacked: u64 = 0;

    fn mkdirp(dir: &str, entries: &mut Vec<ZipEntry>, index: &mut HashMap<String, usize>) {
        let mut cur = String::new();
        for part in dir.split('/') {
            cur.push_str(part);
            cur.push('/');
            if !index.contains_key(&cur) {
                index.insert(cur.clone(), entries.len());
                entries.push(ZipEntry {
                    name: cur.clone(),
                    mode: 0o40755,
                    data: None,
                });
            }
        }
    }

    let mut archive = tar::Archive::new(flate2::bufread::GzDecoder::new(tgz));
    for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let raw = String::from_utf8(entry.path_bytes().into_owned())
            .map_err(|_| unrepro("a file name that is not UTF-8".into()))?;
        let segments: Vec<&str> = raw.split('/').collect();
        if raw.starts_with('/') || segments.contains(&"..") || segments.len() <= 1 {
            continue;
        }
        let normal: Vec<&str> = segments
            .iter()
            .copied()
            .filter(|s| !s.is_empty() && *s != ".")
            .collect();
        if normal.len() <= 1 {
            continue;
        }
        let path = format!("{prefix}/{}", normal[1..].join("/"));
        let header_mode = entry.header().mode().unwrap_or(0);
        let kind = entry.header().entry_type();
        let executable = kind.is_dir() || header_mode & 0o111 != 0;
        let mode = if executable { 0o755 } else { 0o644 };
        let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
        if kind.is_dir() {
            mkdirp(parent, &mut entries, &mut index);
            let dir = format!("{path}/");
            if index.contains_key(&dir) || index.contains_key(&path) {
                return Err(unrepro(format!("the directory {path} comes twice")));
            }
            index.insert(dir.clone(), entries.len());
            entries.push(ZipEntry {
                name: dir,
                mode: 0o40000 | mode,
                data: None,
            });
        } else if kind.is_file() {
            mkdirp(parent, &mut entries, &mut index);
            let size = entry.size();
            unpacked = unpacked.saturating_add(size);
            if unpacked > MAX_UNPACKED_BYTES {
                return Err(unrepro(format!(
                    "it unpacks to more than {MAX_UNPACKED_BYTES} bytes"
                )));
            }
            let mut data = Vec::with_capacity(size.min(1 << 24) as usize);
            entry
                .read_to_end(&mut data)
                .map_err(|e| bad(e.to_string()))?;
            if index.contains_key(&format!("{path}/")) {
                return Err(unrepro(format!("{path} is a file and a directory")));
            }
            match index.get(&path) {
                Some(&i) => entries[i].data = Some(data),
                None => {
                    index.insert(path.clone(), entries.len());
                    entries.push(ZipEntry {
                        name: path,
                        mode: 0o100000 | mode,
                        data: Some(data),
                    });
                }
            }
        } else if kind.is_symlink() {
            // a link entry (mode 0120777) whose content is its target, as libzip stores it
            mkdirp(parent, &mut entries, &mut index);
            let target = entry
                .link_name_bytes()
                .map(|t| t.into_owned())
                .unwrap_or_default();
            if index.contains_key(&path) || index.contains_key(&format!("{path}/")) {
                return Err(unrepro(format!("the symbolic link {path} comes twice")));
            }
            index.insert(path.clone(), entries.len());
            entries.push(ZipEntry {
                name: path,
                mode: 0o120777,
                data: Some(target),
            });
        }
        // hard links, devices, fifos: Yarn skips them
        if entries.len() > MAX_ENTRIES {
            return Err(unrepro(format!("more than {MAX_ENTRIES} entries")));
        }
    }
    // the rest of the gzip stream, then nothing: bytes after it would change the tarball and
    // not the zip, and the tarball is what is served
    let mut gz = archive.into_inner();
    std::io::copy(&mut gz, &mut std::io::sink()).map_err(|e| bad(e.to_string()))?;
    if !gz.into_inner().is_empty() {
        return Err(bad("it has data after its gzip stream".into()));
    }
    write_zip(&entries, out).map_err(|e| match e {
        WriteError::Zip64 => unrepro("a zip64 size".into()),
        WriteError::Io(e) => bad(format!("writing its zip: {e}")),
    })
}

enum WriteError {
    Zip64,
    Io(std::io::Error),
}

fn write_zip(entries: &[ZipEntry], out: &mut dyn std::io::Write) -> Result<(), WriteError> {
    let total: usize = entries
        .iter()
        .map(|e| 2 * e.name.len() + 76 + e.data.as_ref().map_or(0, Vec::len))
        .sum();
    if total as u64 >= u32::MAX as u64 {
        return Err(WriteError::Zip64);
    }
    let mut written: u32 = 0;
    let mut central = Vec::with_capacity(entries.len() * 46);
    for e in entries {
        let data = e.data.as_deref().unwrap_or_default();
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let crc = crc.sum();
        let needed: u16 = if e.data.is_some() { 10 } else { 20 };
        // libzip marks a name that is UTF-8 and not ASCII as UTF-8 (bit 11), no extra field
        let flags: u16 = if e.name.is_ascii() { 0 } else { 0x0800 };
        let (size, name_len) = (data.len() as u32, e.name.len() as u16);
        let mut local = Vec::with_capacity(30 + e.name.len());
        local.extend_from_slice(&0x04034b50u32.to_le_bytes());
        for v in [needed, flags, 0, DOS_TIME, DOS_DATE] {
            local.extend_from_slice(&v.to_le_bytes());
        }
        for v in [crc, size, size] {
            local.extend_from_slice(&v.to_le_bytes());
        }
        for v in [name_len, 0] {
            local.extend_from_slice(&v.to_le_bytes());
        }
        local.extend_from_slice(e.name.as_bytes());
        out.write_all(&local).map_err(WriteError::Io)?;
        out.write_all(data).map_err(WriteError::Io)?;

        central.extend_from_slice(&0x02014b50u32.to_le_bytes());
        for v in [0x033fu16, needed, flags, 0, DOS_TIME, DOS_DATE] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        for v in [crc, size, size] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        for v in [name_len, 0, 0, 0, 0] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        for v in [e.mode << 16, written] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        central.extend_from_slice(e.name.as_bytes());
        written += (local.len() + data.len()) as u32;
    }
    let (cd_size, n) = (central.len() as u32, entries.len() as u16);
    central.extend_from_slice(&0x06054b50u32.to_le_bytes());
    for v in [0u16, 0, n, n] {
        central.extend_from_slice(&v.to_le_bytes());
    }
    for v in [cd_size, written] {
        central.extend_from_slice(&v.to_le_bytes());
    }
    central.extend_from_slice(&0u16.to_le_bytes());
    out.write_all(&central).map_err(WriteError::Io)
}

/// sha512 hex of `bytes` (Berry's checksum hash).
pub fn sha512_hex(bytes: &[u8]) -> String {
    hex::encode(Sha512::digest(bytes))
}

/// Yarn's `hashUtils.makeHash`: sha512 hex of its parts concatenated.
fn make_hash(parts: &[&str]) -> String {
    let mut h = Sha512::new();
    for p in parts {
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// A locator's hash (`structUtils.makeLocator`): of the ident's hash (of scope without `@`,
/// and name) and the reference (`npm:1.2.3`).
pub fn locator_hash(name: &str, reference: &str) -> String {
    let (scope, base) = match name.strip_prefix('@').and_then(|n| n.split_once('/')) {
        Some((s, b)) => (s, b),
        None => ("", name),
    };
    make_hash(&[&make_hash(&[scope, base]), reference])
}

/// The cache file name Yarn gives the zip of `name` at the npm `version` (`Cache.
/// getChecksumFilename` with the lockfile's checksum hash, `getVersionFilename` with the
/// cache key when the lockfile has none).
pub fn cache_file_name(
    name: &str,
    version: &str,
    checksum_hex: Option<&str>,
    cache_key: &str,
) -> String {
    cache_file_name_for(name, &format!("npm:{version}"), checksum_hex, cache_key)
}

/// The cache file name Yarn gives the zip of the locator `name@reference`
/// (`structUtils.slugifyLocator`): the reference's protocol, with its selector when that is a
/// semver version (`npm-1.2.3`; an http(s) URL gives `http`/`https`), and the locator hash.
pub fn cache_file_name_for(
    name: &str,
    reference: &str,
    checksum_hex: Option<&str>,
    cache_key: &str,
) -> String {
    let slug = match name.strip_prefix('@').and_then(|n| n.split_once('/')) {
        Some((s, b)) => format!("@{s}-{b}"),
        None => name.to_string(),
    };
    // `structUtils.parseRange`: the protocol runs to the first `:` before any `#`
    let (protocol, rest) = match reference.split_once(':') {
        Some((p, rest)) if !p.contains('#') => (p, rest),
        _ => ("exotic", reference),
    };
    let selector = rest.split_once('#').map_or(rest, |(_, s)| s);
    let selector = selector.split_once("::").map_or(selector, |(s, _)| s);
    let human = if semver::Version::parse(selector).is_ok() {
        format!("{protocol}-{selector}")
    } else {
        protocol.to_string()
    };
    let hash = locator_hash(name, reference);
    let tail = match checksum_hex {
        Some(c) => c.get(..10).unwrap_or(c).to_string(),
        None => cache_key.to_string(),
    };
    format!("{slug}-{human}-{}-{tail}.zip", &hash[..10])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tgz(entries: &[(&str, u8, u32, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::default(),
        ));
        for (path, kind, mode, data) in entries {
            let mut h = tar::Header::new_ustar();
            h.set_path(path).unwrap();
            h.set_entry_type(tar::EntryType::new(*kind));
            h.set_mode(*mode);
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn cache_names_as_yarn_writes_them() {
        // from a real Yarn 4.18.1 cache
        assert_eq!(
            cache_file_name(
                "left-pad",
                "1.3.0",
                Some("3fb59c76e281c9e04bd1a7cb0e8f8a4c83ce3e9aa2ea0208b8b2e7b9a1c1c7f9"),
                "10c0"
            ),
            "left-pad-npm-1.3.0-0382e69409-3fb59c76e2.zip"
        );
        assert_eq!(
            cache_file_name(
                "@babel/code-frame",
                "7.23.5",
                Some("a10e843595ddd9f97f"),
                "10c0"
            ),
            "@babel-code-frame-npm-7.23.5-cb10d08de6-a10e843595.zip"
        );
        assert_eq!(
            cache_file_name("@esbuild/linux-x64", "0.20.2", None, "10c0"),
            "@esbuild-linux-x64-npm-0.20.2-54b0127370-10c0.zip"
        );
        // an http tarball's locator, from a real Yarn 4.18.1 cache
        assert_eq!(
            cache_file_name_for(
                "tpkg",
                "http://127.0.0.1:18765/tpkg-1.2.3.tgz",
                Some("90b6daad7ce94edcd6c854bd1aadcd2e1a58d42aba2823919a2abf924638311d"),
                "10c0"
            ),
            "tpkg-http-f4ca6ca80b-90b6daad7c.zip"
        );
        assert_eq!(
            cache_file_name_for(
                "gdep",
                "http://127.0.0.1:18765/gdep-external-gitcommit-cd2cae0b32aae73d54567296f6fbcf10b74b3f6b.tgz",
                Some("f84d9f7aa7b89bd5f0e6"),
                "10c0"
            ),
            "gdep-http-cc2581920c-f84d9f7aa7.zip"
        );
    }

    #[test]
    fn layout_of_the_zip() {
        let t = tgz(&[
            ("package/package.json", b'0', 0o644, b"{}"),
            ("package/bin/x", b'0', 0o700, b"#!"),
            ("package/lib/a.js", b'0', 0o600, b"1"),
            ("package/lib/a.js", b'0', 0o600, b"22"),
            ("other", b'0', 0o644, b"skipped: one segment"),
            ("package/l", b'1', 0o644, b""),
        ]);
        let z = convert_tgz(&t[..], "@s/p", "@s/p@1.0.0").unwrap();
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&z)).unwrap();
        let names: Vec<(String, Option<u32>)> = (0..zip.len())
            .map(|i| {
                let f = zip.by_index(i).unwrap();
                (f.name().to_string(), f.unix_mode())
            })
            .collect();
        assert_eq!(
            names,
            [
                ("node_modules/".into(), Some(0o40755)),
                ("node_modules/@s/".into(), Some(0o40755)),
                ("node_modules/@s/p/".into(), Some(0o40755)),
                ("node_modules/@s/p/package.json".into(), Some(0o100644)),
                ("node_modules/@s/p/bin/".into(), Some(0o40755)),
                ("node_modules/@s/p/bin/x".into(), Some(0o100755)),
                ("node_modules/@s/p/lib/".into(), Some(0o40755)),
                ("node_modules/@s/p/lib/a.js".into(), Some(0o100644)),
            ]
        );
        let mut s = String::new();
        zip.by_name("node_modules/@s/p/lib/a.js")
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "22");
        // the same bytes every time; hashed as it is written
        assert_eq!(z, convert_tgz(&t[..], "@s/p", "x").unwrap());
        assert_eq!(zip_sha512(&t, "@s/p", "x").unwrap(), sha512_hex(&z));
    }

    #[test]
    fn non_ascii_names_as_yarn_4_writes_them() {
        // `package/héllo-日本.txt` among others, and the checksum Yarn 4.18.1 locked for it
        let tgz = hex::decode("1f8b0800000000000003edd54baac2301406e08eef2a4ac6d79a340fc1dd0429d7684d4a5b4510d7e1c4a903e1eec2bdb80ee37390819d5845fdbfc9296921074effa4d083b1fecbba518ba8d793f254bdb09e9e99e494a722554c459431265914cb369bba9a56b52ee3382a9dabef7dd7f4fe4d1597f917b9363619556dec711cb012e2cefcd360fea9f24b316da399d097cf7ffef3ea0ee0956ef93f577f0238fbe83d1af32f54907f2e780ff97f8605b17a92913eb1ceea6a600cf925b3acac8cb37e912534a1648933e2635df33fdc6df3dc75f6abcd7efd9fd4f347feebcdf73f0ff22f15c3fdff14438370030000000000000000000000007c8a037ba58f9a00280000").unwrap();
        assert_eq!(
            zip_sha512(&tgz, "nonascii", "nonascii@1.0.0").unwrap(),
            "baf183c462a30a821b1d7255ae35e4776c57f4b0c6b56ef9ab2df58f949c5f684b346f09105f5495ce6d0f969c3169b271efa0869ff95d731ec59c6b06db34d6"
        );
    }

    #[test]
    fn symbolic_links_as_yarn_4_writes_them() {
        // `package/link.js` → `lib/real.js`, and the checksum Yarn 4.18.1 locked for it
        let tgz = hex::decode("1f8b0800000000000003edd5df0a82301406f05df714b2ebb0cd6d0e7a9b151295ff508b227af75492422a299c517ebf9b232aecc0e17c4bcd726b56c18c58c44a5aa9ba96dab57ee64a30e149cf579c30ceb962c451369b6aecf2c2648e43b224295efdd7f5fd47a5d7f95fabbbc993b8ef33aa01fb523e9fbf14adf90b29047158df8d3c32f2f99f686ca280ce697e8cc2239dd27d90e5eb242edf7097b98c9e27df6e112c6af63f5c2facdd011fe4bfe63ef27f08f7f3cf0213961740ef6774e63ff3daf9cf7d8dfc1fc201f13e6ab7fd8fb73676bf52e7bfd66fe4bf94d5fe7b3643a931f2fd07000000000000000000000080ff72018bd601ac00280000").unwrap();
        assert_eq!(
            zip_sha512(&tgz, "symly", "symly@1.0.0").unwrap(),
            "2ced8c2f5db58db77152e279db020d536ca94dfb4438f5b85ed15fbdb2fd4cccca0d9ada35353e84c9bc51697866fd6d3a01887983ab41d2494d8c3cb0ec7331"
        );
    }

    #[test]
    fn what_it_does_not_rebuild_is_an_error() {
        let t = tgz(&[
            ("package/d/", b'5', 0o755, b""),
            ("package/d/", b'5', 0o755, b""),
        ]);
        assert!(matches!(
            convert_tgz(&t[..], "p", "p@1"),
            Err(ZipError::Unreproducible { .. })
        ));
        let mut junk = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        junk.write_all(b"not a tar").unwrap();
        let e = convert_tgz(&junk.finish().unwrap(), "p", "p@1").unwrap_err();
        assert!(e.to_string().contains("p@1"), "{e}");
        assert!(convert_tgz(b"garbage", "p", "p@1").is_err());
        let mut trailing = tgz(&[("package/a", b'0', 0o644, b"a")]);
        trailing.push(0);
        let e = convert_tgz(&trailing, "p", "p@1").unwrap_err();
        assert!(e.to_string().contains("after its gzip stream"), "{e}");
    }

    /// The measurement against a real Yarn cache: `LARDER_BERRY_PROBE=<project>:<tarballs>`
    /// (`<project>` ran `yarn install` with Yarn 4; `<tarballs>` holds each npm entry's tarball
    /// as `<name with / as _>-<version>.tgz`). Every cache file Yarn wrote must be rebuilt
    /// byte for byte, under its name.
    #[test]
    #[ignore = "needs a real Yarn cache (LARDER_BERRY_PROBE)"]
    fn byte_identical_to_a_real_yarn_cache() {
        let probe = std::env::var("LARDER_BERRY_PROBE").unwrap();
        let (mut same, mut total) = (0, 0);
        for pair in probe.split(',') {
            let (project, tarballs) = pair.split_once(':').unwrap();
            let project = std::path::Path::new(project);
            let text = std::fs::read_to_string(project.join("yarn.lock")).unwrap();
            let lock = super::super::berry_lockfile::parse(&text, "yarn.lock").unwrap();
            for e in lock
                .entries
                .iter()
                .filter(|e| e.resolution.protocol() == "npm")
            {
                let (name, version) = (&e.resolution.name, &e.resolution.reference[4..]);
                let hash = e.checksum.as_ref().map(|(h, _)| h.as_str());
                let file = cache_file_name(name, version, hash, "10c0");
                let Ok(theirs) = std::fs::read(project.join(".yarn/cache").join(&file)) else {
                    continue; // not fetched on this system (conditions)
                };
                total += 1;
                let tgz = std::fs::read(
                    std::path::Path::new(tarballs)
                        .join(format!("{}-{version}.tgz", name.replace('/', "_"))),
                )
                .unwrap();
                let ours = convert_tgz(&tgz[..], name, name).unwrap();
                if ours == theirs {
                    same += 1;
                } else {
                    eprintln!("differs: {file}");
                }
            }
        }
        eprintln!("byte-identical: {same} of {total}");
        assert_eq!(same, total);
    }
}
