//! The artifacts a request's layouts make, kept as JSON lines in an unnamed temporary file until
//! they are reported: a 50,000-package lockfile makes 50,000 of them (npm's carry their
//! packument entries) and none is read again before then.

use common::Artifact;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};

#[derive(Default)]
pub struct ArtifactSpool {
    /// Made at the first artifact.
    file: Option<BufWriter<File>>,
    count: usize,
    /// What the artifacts serve (a key once, however many artifacts name it).
    store_keys: BTreeSet<String>,
}

impl ArtifactSpool {
    pub fn push(&mut self, artifact: &Artifact) -> io::Result<()> {
        let file = self.file()?;
        serde_json::to_writer(&mut *file, artifact)?;
        file.write_all(b"\n")?;
        self.count += 1;
        self.store_keys.insert(artifact.store_key.clone());
        Ok(())
    }

    /// Add `other`'s artifacts after this one's.
    pub fn append(&mut self, mut other: ArtifactSpool) -> io::Result<()> {
        let count = other.count;
        let keys = std::mem::take(&mut other.store_keys);
        if let Some(mut lines) = other.into_lines()? {
            io::copy(&mut lines, self.file()?)?;
        }
        self.count += count;
        self.store_keys.extend(keys);
        Ok(())
    }

    /// The store keys of the files the artifacts serve.
    pub fn store_keys(&self) -> impl Iterator<Item = &String> {
        self.store_keys.iter()
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The artifacts as JSON arrays of at most `limit` bytes (unless one artifact alone is
    /// larger), in order; at least one array, empty when there is no artifact.
    pub fn into_bodies(self, limit: usize) -> io::Result<ArtifactBodies> {
        Ok(ArtifactBodies {
            lines: self.into_lines()?,
            pending: None,
            limit,
            first: true,
        })
    }

    /// Every artifact, read back in order (`larder fetch-deps`'s SBOM).
    pub fn into_artifacts(self) -> io::Result<Vec<Artifact>> {
        let mut out = Vec::with_capacity(self.count);
        if let Some(lines) = self.into_lines()? {
            for line in lines.lines() {
                out.push(serde_json::from_str(&line?)?);
            }
        }
        Ok(out)
    }

    fn file(&mut self) -> io::Result<&mut BufWriter<File>> {
        let file = match self.file.take() {
            Some(file) => file,
            None => BufWriter::new(tempfile::tempfile()?),
        };
        Ok(self.file.insert(file))
    }

    fn into_lines(self) -> io::Result<Option<BufReader<File>>> {
        let Some(file) = self.file else {
            return Ok(None);
        };
        let mut file = file.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        Ok(Some(BufReader::new(file)))
    }
}

/// See [`ArtifactSpool::into_bodies`].
pub struct ArtifactBodies {
    lines: Option<BufReader<File>>,
    /// A line read that did not fit the last body.
    pending: Option<Vec<u8>>,
    limit: usize,
    first: bool,
}

impl ArtifactBodies {
    fn next_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        if let Some(line) = self.pending.take() {
            return Ok(Some(line));
        }
        let Some(lines) = &mut self.lines else {
            return Ok(None);
        };
        let mut line = Vec::new();
        if lines.read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        Ok(Some(line))
    }

    fn next_body(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut body = vec![b'['];
        let mut taken = 0;
        while let Some(line) = self.next_line()? {
            if taken > 0 && body.len() + 1 + line.len() + 1 > self.limit {
                self.pending = Some(line);
                break;
            }
            if taken > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&line);
            taken += 1;
        }
        if taken == 0 && !std::mem::take(&mut self.first) {
            return Ok(None);
        }
        self.first = false;
        body.push(b']');
        Ok(Some(body))
    }
}

impl Iterator for ArtifactBodies {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_body().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::artifact::npm::{NpmDist, NpmMeta};
    use common::ArtifactMeta;

    fn artifact(i: usize) -> Artifact {
        Artifact {
            pm: "npm".into(),
            name: format!("pkg-{i}"),
            version: "1.0.0".into(),
            filename: format!("pkg-{i}-1.0.0.tgz"),
            store_key: format!("deps/npm/pkg-{i}/-/pkg-{i}-1.0.0.tgz"),
            meta: ArtifactMeta::Npm(Box::new(NpmMeta {
                dist: NpmDist {
                    integrity: "sha512-x".repeat(i % 7),
                    shasum: String::new(),
                },
                ..Default::default()
            })),
            source_url: None,
        }
    }

    fn spool(artifacts: &[Artifact]) -> ArtifactSpool {
        let mut spool = ArtifactSpool::default();
        for a in artifacts {
            spool.push(a).unwrap();
        }
        spool
    }

    #[test]
    fn artifacts_come_back_in_bounded_json_arrays_in_order() {
        let all: Vec<Artifact> = (0..500).map(artifact).collect();
        let limit = 4096;
        let mut first = spool(&all[..200]);
        first.append(spool(&all[200..])).unwrap();
        assert_eq!(first.len(), 500);
        let bodies: Vec<Vec<u8>> = first
            .into_bodies(limit)
            .unwrap()
            .collect::<io::Result<_>>()
            .unwrap();
        assert!(bodies.len() > 10, "{}", bodies.len());
        let mut again = Vec::new();
        for body in &bodies {
            assert!(body.len() <= limit, "{}", body.len());
            again.extend(serde_json::from_slice::<Vec<Artifact>>(body).unwrap());
        }
        assert_eq!(again, all);
    }

    #[test]
    fn no_artifact_is_one_empty_array_and_a_large_one_goes_alone() {
        let none: Vec<Vec<u8>> = ArtifactSpool::default()
            .into_bodies(4096)
            .unwrap()
            .collect::<io::Result<_>>()
            .unwrap();
        assert_eq!(none, [b"[]".to_vec()]);
        let two: Vec<Vec<u8>> = spool(&[artifact(1), artifact(2)])
            .into_bodies(10)
            .unwrap()
            .collect::<io::Result<_>>()
            .unwrap();
        assert_eq!(two.len(), 2);
    }
}
