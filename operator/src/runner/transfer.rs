//! Moving parts of any size: the plans (pure) that cut a part into the chunks of a multipart
//! upload or the ranges of a parallel download, and the multipart upload itself (the ranged
//! download is `restore.rs`'s).
//!
//! S3 takes at most 5 GiB in one `PutObject`. A part above [`MULTIPART_THRESHOLD`] is uploaded
//! in chunks (CreateMultipartUpload, UploadPart, CompleteMultipartUpload) within S3's limits:
//! every chunk but the last at least 5 MiB, none above 5 GiB, at most 10,000 of them, so an
//! object of at most 5 TiB. A part above [`DOWNLOAD_THRESHOLD`] is read back in ranges of
//! [`RANGE_SIZE`].

use std::path::Path;

use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use futures::{StreamExt as _, TryStreamExt as _};

use super::{RunError, manifest, s3_error, sdk_error};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

/// Parts larger than this are uploaded in chunks. Below it one request is cheap to send again;
/// above it the chunks go out [`PARALLEL`] at a time and a failed request costs one chunk.
pub const MULTIPART_THRESHOLD: u64 = 64 * MIB;
/// The chunk size of a multipart upload, until a part is too large for 10,000 of them
/// (156.25 GiB): then the smallest whole number of MiB that fits the part in 10,000 chunks.
pub const CHUNK_SIZE: u64 = 16 * MIB;
/// S3: every chunk but the last at least this large.
pub const MIN_CHUNK: u64 = 5 * MIB;
/// S3: no chunk above this.
pub const MAX_CHUNK: u64 = 5 * GIB;
/// S3: at most this many chunks (part numbers 1 to 10,000).
pub const MAX_CHUNKS: u64 = 10_000;
/// S3: no object above this.
pub const MAX_OBJECT: u64 = 5 * TIB;
/// Parts larger than this are downloaded in ranges, [`PARALLEL`] at a time.
pub const DOWNLOAD_THRESHOLD: u64 = 64 * MIB;
/// The size of a ranged GET. Fixed whatever the part's size: each range is held in memory
/// until it is hashed in order, so at most [`PARALLEL`] of them (64 MiB) at once.
pub const RANGE_SIZE: u64 = 16 * MIB;
/// How many chunks are uploaded, or ranges downloaded, at once.
pub const PARALLEL: usize = 4;

/// A part cut into pieces of `piece` bytes, the last one shorter (pure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pieces {
    /// The part's size.
    pub size: u64,
    /// Every piece's size but the last's.
    pub piece: u64,
}

/// One piece: its number (from 1, as S3 numbers the chunks of an upload), where it starts and
/// how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// 1-based.
    pub number: u64,
    /// Offset in the part.
    pub offset: u64,
    /// Length in bytes (at least 1).
    pub len: u64,
}

impl Piece {
    /// The last byte's offset, as an HTTP range ends.
    pub fn last(&self) -> u64 {
        self.offset + self.len - 1
    }
}

impl Pieces {
    /// How many pieces.
    pub fn count(&self) -> u64 {
        self.size.div_ceil(self.piece)
    }

    /// Every piece, in order.
    pub fn iter(&self) -> impl Iterator<Item = Piece> + use<> {
        let Pieces { size, piece } = *self;
        (0..self.count()).map(move |i| {
            let offset = i * piece;
            Piece {
                number: i + 1,
                offset,
                len: piece.min(size - offset),
            }
        })
    }
}

/// A part too large for one S3 object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{size} bytes: larger than S3's largest object ({MAX_OBJECT} bytes, 5 TiB)")]
pub struct TooLarge {
    /// The part's size.
    pub size: u64,
}

/// How a part of `size` bytes is uploaded (pure): `None` in one request (up to
/// [`MULTIPART_THRESHOLD`]), else its chunks: [`CHUNK_SIZE`], or the smallest whole number of
/// MiB that keeps the count within [`MAX_CHUNKS`].
pub fn upload_chunks(size: u64) -> Result<Option<Pieces>, TooLarge> {
    if size <= MULTIPART_THRESHOLD {
        return Ok(None);
    }
    if size > MAX_OBJECT {
        return Err(TooLarge { size });
    }
    let fits = size.div_ceil(MAX_CHUNKS).div_ceil(MIB) * MIB;
    Ok(Some(Pieces {
        size,
        piece: CHUNK_SIZE.max(fits),
    }))
}

/// How a stored object of `size` bytes is downloaded (pure): `None` in one GET (up to
/// [`DOWNLOAD_THRESHOLD`]), else in ranges of [`RANGE_SIZE`].
pub fn download_ranges(size: u64) -> Option<Pieces> {
    (size > DOWNLOAD_THRESHOLD).then_some(Pieces {
        size,
        piece: RANGE_SIZE,
    })
}

/// Uploads the file at `path` (the backup's part `name`) to `key` in `chunks`, each with its
/// sha256 (hex, `chunk_sha256[i]` for the chunk numbered `i + 1`, from
/// [`manifest::digest_chunks`]) as `x-amz-checksum-sha256`: the upload is created with the
/// SHA256 algorithm, the store checks every chunk as it arrives, and the completion lists each
/// chunk's ETag and checksum. The chunks go [`PARALLEL`] at a time, each read from its offset in
/// the file. On any failure the upload is aborted (best effort: no orphaned chunks are left to
/// be billed), and the error names the part and the chunk.
pub(super) async fn upload_multipart(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    name: &str,
    path: &Path,
    chunks: Pieces,
    chunk_sha256: &[String],
) -> Result<(), RunError> {
    let failed = |step: String, source: RunError, abort: String| RunError::Multipart {
        part: name.to_owned(),
        step,
        source: Box::new(source),
        abort,
    };
    if chunk_sha256.len() as u64 != chunks.count() {
        return Err(failed(
            "planning".to_owned(),
            super::file_error(
                path,
                std::io::Error::other(format!(
                    "{} chunk checksums for {} chunks: the file changed while it was read",
                    chunk_sha256.len(),
                    chunks.count()
                )),
            ),
            String::new(),
        ));
    }
    let created = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await
        .map_err(|e| {
            failed(
                "CreateMultipartUpload".to_owned(),
                sdk_error("create multipart upload", bucket, key, e),
                String::new(),
            )
        })?;
    let Some(upload_id) = created.upload_id().map(str::to_owned) else {
        return Err(failed(
            "CreateMultipartUpload".to_owned(),
            s3_error(
                "create multipart upload",
                bucket,
                key,
                std::io::Error::other("the store's answer has no UploadId"),
            ),
            String::new(),
        ));
    };
    let upload = Upload {
        s3,
        bucket,
        key,
        path,
        upload_id: &upload_id,
        count: chunks.count(),
    };
    let done = match upload.send_all(chunks, chunk_sha256).await {
        Ok(()) => return Ok(()),
        Err(done) => done,
    };
    let (step, source) = done;
    let abort = match s3
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload_id)
        .send()
        .await
    {
        Ok(_) => format!("; its multipart upload {upload_id} was aborted"),
        Err(e) => format!(
            "; aborting its multipart upload {upload_id} failed too, its chunks stay until \
             a lifecycle rule removes them: {}",
            super::error_chain(&sdk_error("abort multipart upload", bucket, key, e))
        ),
    };
    Err(failed(step, source, abort))
}

/// One multipart upload under way.
struct Upload<'a> {
    s3: &'a aws_sdk_s3::Client,
    bucket: &'a str,
    key: &'a str,
    path: &'a Path,
    upload_id: &'a str,
    count: u64,
}

impl Upload<'_> {
    /// Sends every chunk, then the completion; on failure, the step that failed and why.
    async fn send_all(
        &self,
        chunks: Pieces,
        chunk_sha256: &[String],
    ) -> Result<(), (String, RunError)> {
        let mut done: Vec<CompletedPart> = futures::stream::iter(chunks.iter().zip(chunk_sha256))
            .map(|(piece, sha256)| self.send(piece, sha256))
            .buffer_unordered(PARALLEL)
            .try_collect()
            .await?;
        done.sort_by_key(|part| part.part_number());
        let step = format!("CompleteMultipartUpload of {} chunks", self.count);
        self.s3
            .complete_multipart_upload()
            .bucket(self.bucket)
            .key(self.key)
            .upload_id(self.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(done))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| {
                (
                    step,
                    sdk_error("complete multipart upload", self.bucket, self.key, e),
                )
            })?;
        Ok(())
    }

    /// Sends one chunk, read from its offset in the file, with its sha256 as a plain header.
    async fn send(
        &self,
        piece: Piece,
        sha256_hex: &str,
    ) -> Result<CompletedPart, (String, RunError)> {
        let step = format!(
            "chunk {} of {} (bytes {}-{})",
            piece.number,
            self.count,
            piece.offset,
            piece.last()
        );
        let fail = |e: RunError| (step.clone(), e);
        let action = "upload chunk";
        let checksum = manifest::checksum_sha256(sha256_hex).ok_or_else(|| {
            fail(s3_error(
                action,
                self.bucket,
                self.key,
                std::io::Error::other(format!("{sha256_hex:?} is no sha256")),
            ))
        })?;
        let number = i32::try_from(piece.number)
            .map_err(|e| fail(s3_error(action, self.bucket, self.key, e)))?;
        let body = ByteStream::read_from()
            .path(self.path)
            .offset(piece.offset)
            .length(Length::Exact(piece.len))
            .build()
            .await
            .map_err(|e| fail(s3_error("read for upload", self.bucket, self.key, e)))?;
        let sent = self
            .s3
            .upload_part()
            .bucket(self.bucket)
            .key(self.key)
            .upload_id(self.upload_id)
            .part_number(number)
            .content_length(i64::try_from(piece.len).unwrap_or(i64::MAX))
            .checksum_sha256(&checksum)
            .body(body)
            .send()
            .await
            .map_err(|e| fail(sdk_error(action, self.bucket, self.key, e)))?;
        let Some(etag) = sent.e_tag() else {
            return Err(fail(s3_error(
                action,
                self.bucket,
                self.key,
                std::io::Error::other("the store's answer has no ETag"),
            )));
        };
        Ok(CompletedPart::builder()
            .part_number(number)
            .e_tag(etag)
            .checksum_sha256(checksum)
            .build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::loopback;

    /// What S3 demands of a multipart upload's chunks, checked on every piece.
    fn within_s3_limits(pieces: Pieces) {
        let all: Vec<Piece> = pieces.iter().collect();
        assert_eq!(all.len() as u64, pieces.count());
        assert!(pieces.count() <= MAX_CHUNKS, "{pieces:?}");
        assert!(pieces.piece <= MAX_CHUNK, "{pieces:?}");
        assert!(pieces.piece >= MIN_CHUNK, "{pieces:?}");
        assert_eq!(all.iter().map(|p| p.len).sum::<u64>(), pieces.size);
        let last = all.last().expect("a piece");
        assert!(last.len >= 1 && last.len <= pieces.piece);
        assert_eq!(last.last(), pieces.size - 1);
        for (i, piece) in all.iter().enumerate() {
            assert_eq!(piece.number, i as u64 + 1);
            if i + 1 < all.len() {
                assert_eq!(piece.len, pieces.piece);
                assert_eq!(all[i + 1].offset, piece.offset + piece.len);
            }
        }
    }

    #[test]
    fn a_part_up_to_the_threshold_goes_in_one_request() {
        assert_eq!(upload_chunks(0), Ok(None));
        assert_eq!(upload_chunks(11_828), Ok(None));
        assert_eq!(upload_chunks(MULTIPART_THRESHOLD), Ok(None));
        let above = upload_chunks(MULTIPART_THRESHOLD + 1)
            .expect("fits")
            .expect("chunks");
        assert_eq!(above.piece, CHUNK_SIZE);
        assert_eq!(above.count(), 5);
        assert_eq!(above.iter().last().expect("last").len, 1);
        within_s3_limits(above);
    }

    #[test]
    fn a_6_gib_part_goes_in_384_chunks_of_16_mib() {
        let pieces = upload_chunks(6 * GIB).expect("fits").expect("chunks");
        assert_eq!(pieces.piece, 16 * MIB);
        assert_eq!(pieces.count(), 384);
        within_s3_limits(pieces);
    }

    #[test]
    fn chunks_grow_only_when_10000_of_16_mib_are_not_enough() {
        let largest_at_16 = MAX_CHUNKS * CHUNK_SIZE;
        let pieces = upload_chunks(largest_at_16).expect("fits").expect("chunks");
        assert_eq!((pieces.piece, pieces.count()), (CHUNK_SIZE, MAX_CHUNKS));
        within_s3_limits(pieces);
        let pieces = upload_chunks(largest_at_16 + 1)
            .expect("fits")
            .expect("chunks");
        assert_eq!(pieces.piece, 17 * MIB);
        within_s3_limits(pieces);
    }

    #[test]
    fn a_5_tib_part_fits_in_10000_chunks_and_a_larger_one_is_refused() {
        let pieces = upload_chunks(MAX_OBJECT).expect("fits").expect("chunks");
        // 5 TiB / 10,000 = 524.288 MiB, rounded up to whole MiB.
        assert_eq!(pieces.piece, 525 * MIB);
        assert_eq!(pieces.count(), 9_987);
        within_s3_limits(pieces);
        assert_eq!(
            upload_chunks(MAX_OBJECT + 1),
            Err(TooLarge {
                size: MAX_OBJECT + 1
            })
        );
    }

    #[test]
    fn every_size_between_the_threshold_and_5_tib_fits() {
        let mut size = MULTIPART_THRESHOLD + 1;
        while size <= MAX_OBJECT {
            within_s3_limits(upload_chunks(size).expect("fits").expect("chunks"));
            // Odd sizes at every scale, 7 steps a doubling.
            size = size + size / 7 + 12_345;
        }
    }

    const UPLOAD_ID: &str = "up-1";

    /// A multipart upload's answers: the upload's id, each chunk's ETag (`"etag-N"`), or
    /// `refuse` for chunk `refused`.
    fn multipart_store(refused: Option<u64>) -> (String, loopback::Recorded) {
        loopback::serve(move |request: &loopback::Request| {
            let query = request.target.split_once('?').map(|(_, q)| q).unwrap_or("");
            let number = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("partNumber="))
                .and_then(|n| n.parse::<u64>().ok());
            match (request.method.as_str(), number) {
                ("POST", _) if query.starts_with("uploads") => loopback::Answer::new(
                    200,
                    format!(
                        "<InitiateMultipartUploadResult><Bucket>insync</Bucket>\
                         <Key>b/mysql.sql</Key><UploadId>{UPLOAD_ID}</UploadId>\
                         </InitiateMultipartUploadResult>"
                    ),
                ),
                ("PUT", Some(n)) if Some(n) == refused => loopback::Answer::new(
                    400,
                    "<Error><Code>BadDigest</Code><Message>The SHA256 you specified did not \
                     match the calculated checksum.</Message></Error>",
                ),
                ("PUT", Some(n)) => {
                    loopback::Answer::new(200, "").with("ETag", format!("\"etag-{n}\""))
                }
                ("POST", _) => loopback::Answer::new(
                    200,
                    "<CompleteMultipartUploadResult><Bucket>insync</Bucket>\
                     <Key>b/mysql.sql</Key><ETag>\"whole-3\"</ETag></CompleteMultipartUploadResult>",
                ),
                ("DELETE", _) => loopback::Answer::new(204, ""),
                _ => loopback::Answer::new(501, ""),
            }
        })
    }

    /// A 25-byte file in chunks of 10 (the store is a stand-in: it does not hold chunks to
    /// S3's 5 MiB), its chunk checksums and the file.
    fn small_part(dir: &Path) -> (std::path::PathBuf, Pieces, Vec<String>, Vec<u8>) {
        let content: Vec<u8> = (b'a'..=b'y').collect();
        let path = dir.join("mysql.sql");
        std::fs::write(&path, &content).expect("part");
        let pieces = Pieces {
            size: 25,
            piece: 10,
        };
        let (_, _, sha) = manifest::digest_chunks(&content[..], 10).expect("digest");
        (path, pieces, sha, content)
    }

    /// What the SDK sends for a part in chunks: the upload created with SHA256, every chunk
    /// its bytes with its own sha256 as a plain header (never aws-chunked), and the completion
    /// every chunk's ETag and checksum, in order.
    #[tokio::test]
    async fn a_part_in_chunks_sends_every_chunk_with_its_sha256_and_completes_in_order() {
        let (endpoint, recorded) = multipart_store(None);
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, pieces, sha, content) = small_part(dir.path());
        let s3 = loopback::client(&endpoint).await;
        upload_multipart(
            &s3,
            "insync",
            "b/mysql.sql",
            "mysql.sql",
            &path,
            pieces,
            &sha,
        )
        .await
        .expect("uploaded");
        let requests = recorded.lock().expect("log").clone();
        assert_eq!(requests.len(), 5, "{requests:#?}");
        let create = &requests[0];
        assert_eq!(create.method, "POST");
        assert!(
            create.target.starts_with("/insync/b/mysql.sql?uploads"),
            "{create:?}"
        );
        assert_eq!(create.header("x-amz-checksum-algorithm"), Some("SHA256"));
        let mut numbers = Vec::new();
        for chunk in &requests[1..4] {
            assert_eq!(chunk.method, "PUT");
            assert!(
                chunk.target.starts_with("/insync/b/mysql.sql?"),
                "{chunk:?}"
            );
            assert!(
                chunk.target.contains(&format!("uploadId={UPLOAD_ID}")),
                "{chunk:?}"
            );
            let n: usize = chunk
                .target
                .split(['?', '&'])
                .find_map(|kv| kv.strip_prefix("partNumber="))
                .and_then(|n| n.parse().ok())
                .expect("a part number");
            let expected = &content[(n - 1) * 10..(n * 10).min(25)];
            assert_eq!(chunk.body, expected, "chunk {n}");
            assert_eq!(
                chunk.header("content-length"),
                Some(expected.len().to_string().as_str())
            );
            assert_eq!(
                chunk.header("x-amz-checksum-sha256"),
                manifest::checksum_sha256(&sha[n - 1]).as_deref(),
                "chunk {n}"
            );
            for chunked in [
                "aws-chunked",
                "x-amz-trailer",
                "x-amz-decoded-content-length",
            ] {
                assert!(!chunk.head.contains(chunked), "{chunked}: {}", chunk.head);
            }
            numbers.push(n);
        }
        numbers.sort_unstable();
        assert_eq!(numbers, [1, 2, 3]);
        let complete = &requests[4];
        assert_eq!(complete.method, "POST");
        assert!(
            complete.target.contains(&format!("uploadId={UPLOAD_ID}")),
            "{complete:?}"
        );
        let body = String::from_utf8(complete.body.clone()).expect("xml");
        let mut at = 0;
        for n in 1..=3 {
            let part = format!(
                "<ETag>&quot;etag-{n}&quot;</ETag><ChecksumSHA256>{}</ChecksumSHA256>",
                manifest::checksum_sha256(&sha[n - 1]).expect("sha")
            );
            let found = body[at..].find(&part).map(|i| i + at);
            assert!(found.is_some(), "chunk {n} in order: {body}");
            let found = found.unwrap_or_default();
            assert!(body[found..].contains(&format!("<PartNumber>{n}</PartNumber>")));
            at = found + part.len();
        }
    }

    /// A chunk the store refuses fails the part, naming it and the chunk, and the upload is
    /// aborted: no completion, a DELETE of the upload.
    #[tokio::test]
    async fn a_refused_chunk_names_part_and_chunk_and_aborts_the_upload() {
        let (endpoint, recorded) = multipart_store(Some(2));
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, pieces, sha, _) = small_part(dir.path());
        let s3 = loopback::client(&endpoint).await;
        let error = upload_multipart(
            &s3,
            "insync",
            "b/mysql.sql",
            "mysql.sql",
            &path,
            pieces,
            &sha,
        )
        .await
        .expect_err("chunk 2 is refused");
        let reason = super::super::error_chain(&error);
        assert!(
            reason.starts_with(
                "mysql.sql: chunk 2 of 3 (bytes 10-19): upload chunk s3://insync/b/mysql.sql: "
            ),
            "{reason}"
        );
        assert!(reason.contains("BadDigest"), "{reason}");
        assert!(
            reason.ends_with(&format!("; its multipart upload {UPLOAD_ID} was aborted")),
            "{reason}"
        );
        let requests = recorded.lock().expect("log").clone();
        // A chunk still in flight may be recorded after the abort: only the refused chunk's
        // answer comes before it for sure.
        let position = |method: &str, needle: &str| {
            requests
                .iter()
                .position(|r| r.method == method && r.target.contains(needle))
        };
        let abort = position("DELETE", &format!("uploadId={UPLOAD_ID}"));
        let refused = position("PUT", "partNumber=2");
        assert!(
            matches!((refused, abort), (Some(r), Some(a)) if r < a),
            "{requests:#?}"
        );
        assert!(
            !requests
                .iter()
                .any(|r| r.method == "POST" && !r.target.contains("uploads")),
            "no completion: {requests:#?}"
        );
    }

    #[test]
    fn large_objects_are_read_in_ranges_of_16_mib() {
        assert_eq!(download_ranges(0), None);
        assert_eq!(download_ranges(DOWNLOAD_THRESHOLD), None);
        let pieces = download_ranges(DOWNLOAD_THRESHOLD + 1).expect("ranges");
        let ranges: Vec<(u64, u64)> = pieces.iter().map(|p| (p.offset, p.last())).collect();
        assert_eq!(
            ranges,
            vec![
                (0, 16 * MIB - 1),
                (16 * MIB, 32 * MIB - 1),
                (32 * MIB, 48 * MIB - 1),
                (48 * MIB, 64 * MIB - 1),
                (64 * MIB, 64 * MIB),
            ]
        );
        let pieces = download_ranges(MAX_OBJECT).expect("ranges");
        assert_eq!(pieces.count(), MAX_OBJECT / RANGE_SIZE);
        assert_eq!(pieces.iter().last().expect("last").last(), MAX_OBJECT - 1);
    }
}
