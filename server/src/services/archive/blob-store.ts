/**
 * The archive's view of Azure Blob Storage (@azure/storage-blob): write-once uploads
 * (If-None-Match: *), reads for verification, and version-level immutability policies.
 * Authenticates with AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_URL with
 * DefaultAzureCredential (managed identity, workload identity, az login, …).
 */
import { createHash } from 'node:crypto';
import { DefaultAzureCredential } from '@azure/identity';
import { BlobServiceClient, RestError, type ContainerClient, type StoragePipelineOptions } from '@azure/storage-blob';
import type { Config } from '../../config';

export interface StoredBlob {
  content: Buffer;
  metadata: Record<string, string>;
}

export interface BlobStore {
  readonly container: string;
  ensureContainer(): Promise<void>;
  /** Uploads unless a blob with this name exists: 'created' or 'exists' (never overwrites). */
  putIfAbsent(
    name: string,
    content: Buffer,
    metadata: Record<string, string>,
    contentType?: string,
  ): Promise<'created' | 'exists'>;
  get(name: string): Promise<StoredBlob | null>;
  /** Version-level immutability (WORM) until `until`; needs an account/container with version-level immutability support. */
  setImmutability(name: string, until: Date): Promise<void>;
  list(prefix: string): Promise<string[]>;
}

export interface BlobStoreOptions {
  /** Azure SDK retry policy; the defaults suit production (3 tries, 30 s per try). */
  retry?: StoragePipelineOptions['retryOptions'];
}

function isStatus(err: unknown, status: number): boolean {
  return err instanceof RestError ? err.statusCode === status : (err as { statusCode?: number })?.statusCode === status;
}

export function createBlobStore(archive: Config['archive'], opts: BlobStoreOptions = {}): BlobStore | null {
  const pipeline: StoragePipelineOptions = {
    retryOptions: opts.retry ?? { maxTries: 3, tryTimeoutInMs: 30_000, retryDelayInMs: 500, maxRetryDelayInMs: 5_000 },
  };
  let service: BlobServiceClient;
  if (archive.connectionString) service = BlobServiceClient.fromConnectionString(archive.connectionString, pipeline);
  else if (archive.accountUrl)
    service = new BlobServiceClient(archive.accountUrl, new DefaultAzureCredential(), pipeline);
  else return null;
  const container: ContainerClient = service.getContainerClient(archive.container);
  let ensured = false;

  return {
    container: archive.container,
    async ensureContainer() {
      if (ensured) return;
      try {
        await container.createIfNotExists();
      } catch (err) {
        // A credential scoped to blobs may not create containers; the container may exist anyway.
        if (!isStatus(err, 403)) throw err;
      }
      ensured = true;
    },
    async putIfAbsent(name, content, metadata, contentType) {
      const blob = container.getBlockBlobClient(name);
      try {
        await blob.upload(content, content.length, {
          conditions: { ifNoneMatch: '*' },
          metadata,
          transactionalContentMD5: createHash('md5').update(content).digest(),
          blobHTTPHeaders: { blobContentType: contentType ?? 'application/x-ndjson; charset=utf-8' },
        });
        return 'created';
      } catch (err) {
        if (isStatus(err, 409) || isStatus(err, 412)) return 'exists';
        throw err;
      }
    },
    async get(name) {
      const blob = container.getBlockBlobClient(name);
      try {
        const [content, props] = await Promise.all([blob.downloadToBuffer(), blob.getProperties()]);
        return { content, metadata: props.metadata ?? {} };
      } catch (err) {
        if (isStatus(err, 404)) return null;
        throw err;
      }
    },
    async setImmutability(name, until) {
      await container.getBlockBlobClient(name).setImmutabilityPolicy({ expiriesOn: until, policyMode: 'Unlocked' });
    },
    async list(prefix) {
      const names: string[] = [];
      try {
        for await (const b of container.listBlobsFlat({ prefix })) names.push(b.name);
      } catch (err) {
        // No container yet (nothing exported or published so far): no blobs, not an error —
        // GET /audit/verify lists checkpoint blobs on a fresh archive.
        if (isStatus(err, 404)) return [];
        throw err;
      }
      return names;
    },
  };
}
