//! An object written in pieces with bounded memory: bytes are buffered up to one part
//! ([`PART_SIZE`]); an object that stays within one part is one `PutObject`, a larger one a
//! multipart upload (a part each time the buffer fills, then `CompleteMultipartUpload`; on
//! failure the upload is aborted, and the bucket's lifecycle rule removes what an abort
//! could not). What the finish step writes for a month of any size (`diff.jsonl`,
//! `diff.csv`) goes through here.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use adapters::StoreError;

/// The size of every part but the last (S3 takes 5 MiB to 5 GiB).
pub const PART_SIZE: usize = 8 << 20;

/// A failed S3 call as a store error: transient when a retry may succeed.
pub fn s3_error<E, R>(op: &'static str, resource: &str, err: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let transient = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(se) => se.err().code().is_some_and(|c| {
            matches!(
                c,
                "SlowDown"
                    | "Throttling"
                    | "ThrottlingException"
                    | "RequestTimeout"
                    | "InternalError"
                    | "ServiceUnavailable"
            )
        }),
        _ => false,
    };
    StoreError::Aws {
        op,
        resource: resource.to_owned(),
        message: DisplayErrorContext(&err).to_string(),
        transient,
        source: Box::new(err),
    }
}

/// One object being written.
pub struct ObjectWriter {
    client: Client,
    bucket: String,
    key: String,
    content_type: &'static str,
    part_size: usize,
    buf: Vec<u8>,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
    /// Bytes written so far.
    pub bytes: u64,
}

impl ObjectWriter {
    pub fn new(client: Client, bucket: &str, key: &str, content_type: &'static str) -> Self {
        Self::with_part_size(client, bucket, key, content_type, PART_SIZE)
    }

    /// With another part size (tests: S3 refuses parts under 5 MiB but the last).
    pub fn with_part_size(
        client: Client,
        bucket: &str,
        key: &str,
        content_type: &'static str,
        part_size: usize,
    ) -> Self {
        ObjectWriter {
            client,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            content_type,
            part_size: part_size.max(1),
            buf: Vec::new(),
            upload_id: None,
            parts: Vec::new(),
            bytes: 0,
        }
    }

    fn resource(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    /// Appends bytes; uploads a part when the buffer holds one.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.buf.extend_from_slice(bytes);
        self.bytes += bytes.len() as u64;
        while self.buf.len() >= self.part_size {
            let rest = self.buf.split_off(self.part_size);
            let part = std::mem::replace(&mut self.buf, rest);
            if let Err(e) = self.upload_part(part).await {
                self.abort().await;
                return Err(e);
            }
        }
        Ok(())
    }

    async fn upload_part(&mut self, part: Vec<u8>) -> Result<(), StoreError> {
        let id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let created = self
                    .client
                    .create_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .content_type(self.content_type)
                    .send()
                    .await
                    .map_err(|e| s3_error("CreateMultipartUpload", &self.resource(), e))?;
                let id = created.upload_id().unwrap_or_default().to_owned();
                self.upload_id = Some(id.clone());
                id
            }
        };
        let number = self.parts.len() as i32 + 1;
        let done = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&id)
            .part_number(number)
            .body(ByteStream::from(part))
            .send()
            .await
            .map_err(|e| s3_error("UploadPart", &self.resource(), e))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(done.e_tag().map(str::to_owned))
                .build(),
        );
        Ok(())
    }

    async fn abort(&mut self) {
        if let Some(id) = self.upload_id.take() {
            // Best effort: the lifecycle rule (AbortIncompleteUploads) removes what is left.
            if let Err(e) = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(id)
                .send()
                .await
            {
                tracing::warn!(error = %DisplayErrorContext(&e), "multipart upload not aborted");
            }
        }
    }

    /// Writes what is buffered and completes the object; answers the parts it took (1 for a
    /// single `PutObject`).
    pub async fn finish(mut self) -> Result<usize, StoreError> {
        if self.upload_id.is_none() {
            let body = std::mem::take(&mut self.buf);
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&self.key)
                .content_type(self.content_type)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| s3_error("PutObject", &self.resource(), e))?;
            return Ok(1);
        }
        let last = std::mem::take(&mut self.buf);
        if !last.is_empty()
            && let Err(e) = self.upload_part(last).await
        {
            self.abort().await;
            return Err(e);
        }
        let id = self.upload_id.clone().unwrap_or_default();
        let parts = std::mem::take(&mut self.parts);
        let count = parts.len();
        let completed = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await;
        if let Err(e) = completed {
            let err = s3_error("CompleteMultipartUpload", &self.resource(), e);
            self.abort().await;
            return Err(err);
        }
        Ok(count)
    }
}
