/**
 * The offline verifier's Merkle trees, one per tenant (merkle-verify.ts's TreeBuilder), with
 * the signed roots they must reach: fed the chain hashes in placement order, it checks the
 * root at every checkpointed size and stops at the first that differs. Runs in the verifier's
 * main thread, or in a row reader thread beside it (offline-rows-worker.ts) for large inputs.
 */
import { TreeBuilder } from './merkle-verify';

export interface TreeTenant {
  tenantId: string;
  /** Checkpointed sizes, ascending, with their signed roots and note files. */
  sizes: number[];
  roots: Uint8Array[];
  files: string[];
}

export interface TreesState {
  /** The first tree that did not rebuild (the verifier's failure text), or null. */
  failure: string | null;
  /** Rows added per tenant (up to and including the one that failed). */
  rows: number[];
  /** Sizes whose signed root was rebuilt, per tenant. */
  verified: number[][];
}

const equal = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return false;
  return true;
};

export class Trees {
  private readonly builders: TreeBuilder[];
  private readonly next: number[];
  private readonly st: TreesState;

  constructor(private readonly tenants: readonly TreeTenant[]) {
    this.builders = tenants.map(() => new TreeBuilder());
    this.next = tenants.map(() => 0);
    this.st = { failure: null, rows: tenants.map(() => 0), verified: tenants.map(() => []) };
    // A checkpoint of size 0 (the service never signs one; a key holder could) signs the empty
    // tree, whose root is the hash of nothing (RFC 9162 §2.1.1): checked here, since no row
    // reaches it, so that it neither passes unchecked nor holds back the sizes after it.
    tenants.forEach((tn, t) => {
      let i = 0;
      for (; i < tn.sizes.length && tn.sizes[i] === 0; i += 1) {
        if (!equal((this.builders[t] as TreeBuilder).root(), tn.roots[i] as Uint8Array)) {
          this.st.failure ??= `tenant ${tn.tenantId}: the checkpoint signed in ${tn.files[i]} (size 0) states a root that is not the empty tree`;
          return;
        }
        (this.st.verified[t] as number[]).push(0);
      }
      this.next[t] = i;
    });
  }

  /** Appends tenant t's next chain hash; false (and state().failure set) when a signed root is not rebuilt. */
  add(t: number, rowHash: Uint8Array): boolean {
    if (this.st.failure !== null) return false;
    const tn = this.tenants[t] as TreeTenant;
    const b = this.builders[t] as TreeBuilder;
    b.addRowHash(rowHash);
    const size = (this.st.rows[t] as number) + 1;
    this.st.rows[t] = size;
    let i = this.next[t] as number;
    while (i < tn.sizes.length && tn.sizes[i] === size) {
      if (!equal(b.root(), tn.roots[i] as Uint8Array)) {
        this.st.failure = `tenant ${tn.tenantId}: the archived rows do not rebuild the tree signed in ${tn.files[i]} (size ${size}): a row up to that position was changed, removed, inserted or reordered`;
        return false;
      }
      (this.st.verified[t] as number[]).push(size);
      i += 1;
    }
    this.next[t] = i;
    return true;
  }

  state(): TreesState {
    return this.st;
  }
}
