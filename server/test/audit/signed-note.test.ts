/** Signed checkpoints (C2SP signed-note + tlog-checkpoint, Ed25519): writer and independent reader. */
import { createHash, generateKeyPairSync } from 'node:crypto';
import {
  checkpointBody,
  createCheckpointSigner,
  parseEd25519PrivateKey,
  CheckpointKeyError,
} from '../../src/services/audit/signed-note';
import { parseVerifierKey, verifyCheckpointNote } from '../../src/services/audit/note-verify';

const newKey = () => generateKeyPairSync('ed25519').privateKey;
const root = createHash('sha256').update('root').digest();
const ORIGIN = 'fleet-security-api/default/acme';

describe('signed checkpoint notes', () => {
  const signer = createCheckpointSigner('fleet-security-api/default', newKey());
  const key = parseVerifierKey(signer.verifierKey);
  const note = signer.signBody(checkpointBody(ORIGIN, 42, root));

  it('when a checkpoint is signed, then it has the C2SP layout and the key id is SHA-256(name || 0x0A || 0x01 || key)[0:4]', () => {
    const lines = note.split('\n');
    expect(lines.slice(0, 4)).toEqual([ORIGIN, '42', root.toString('base64'), '']);
    expect(lines[4]).toMatch(/^\u2014 fleet-security-api\/default [A-Za-z0-9+/]{91}=$/);
    const [name, idHex, b64] = [
      signer.verifierKey.split('+')[0],
      signer.verifierKey.split('+')[1],
      signer.verifierKey.slice(signer.verifierKey.indexOf('+', signer.verifierKey.indexOf('+') + 1) + 1),
    ];
    const raw = Buffer.from(b64 as string, 'base64');
    expect(raw[0]).toBe(1);
    expect(createHash('sha256').update(`${name}\n`).update(raw).digest().subarray(0, 4).toString('hex')).toBe(idHex);
    expect(
      Buffer.from(lines[4]?.split(' ')[2] as string, 'base64')
        .subarray(0, 4)
        .toString('hex'),
    ).toBe(idHex);
  });

  it('when the note is intact, then it verifies and yields origin, size and root', () => {
    const cp = verifyCheckpointNote(note, [key], ORIGIN);
    expect(cp).toMatchObject({ origin: ORIGIN, size: 42, signedBy: ['fleet-security-api/default'] });
    expect(cp.root.equals(root)).toBe(true);
  });

  it('when the body, the size or the signature is altered, then it is refused', () => {
    expect(() => verifyCheckpointNote(note.replace('\n42\n', '\n43\n'), [key])).toThrow(/does not verify/);
    const sigLine = note.split('\n')[4] as string;
    const sig = Buffer.from(sigLine.split(' ')[2] as string, 'base64');
    sig[10] = (sig[10] as number) ^ 1;
    expect(() =>
      verifyCheckpointNote(note.replace(sigLine, `\u2014 fleet-security-api/default ${sig.toString('base64')}`), [key]),
    ).toThrow(/does not verify/);
  });

  it('when the origin is another tenant, then it is refused', () => {
    expect(() => verifyCheckpointNote(note, [key], 'fleet-security-api/default/other')).toThrow(/origin/);
  });

  it('when the note is signed by an unknown key (or a key with the same name), then it is refused', () => {
    const other = createCheckpointSigner('fleet-security-api/default', newKey());
    expect(() => verifyCheckpointNote(other.signBody(checkpointBody(ORIGIN, 42, root)), [key])).toThrow(
      /no signature by a known key/,
    );
    const stranger = createCheckpointSigner('someone-else', newKey());
    expect(() => verifyCheckpointNote(stranger.signBody(checkpointBody(ORIGIN, 42, root)), [key])).toThrow(
      /no signature by a known key/,
    );
  });

  it('when malformed notes or keys are given, then they are refused with a reason, never accepted', () => {
    for (const bad of [
      '',
      'x',
      `${ORIGIN}\n42\n`,
      note.slice(0, -1),
      note.replace('\n\n', '\n'),
      note.replace(root.toString('base64'), 'AAAA'),
      note.replace('\n42\n', '\n-1\n'),
      note.replace('\n42\n', '\n042\n'),
    ]) {
      expect(() => verifyCheckpointNote(bad, [key])).toThrow();
    }
    for (const bad of [
      '',
      'a+b',
      'name+0011+AAAA',
      `${signer.verifierKey.split('+')[0]}+00000000+${signer.verifierKey.split('+').slice(2).join('+')}`,
    ]) {
      expect(() => parseVerifierKey(bad)).toThrow();
    }
  });

  it('when the configured key is not Ed25519 or not PKCS#8, then it is refused', () => {
    expect(() => parseEd25519PrivateKey('bm90IGEga2V5')).toThrow(CheckpointKeyError);
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
      .privateKey.export({ format: 'der', type: 'pkcs8' })
      .toString('base64');
    expect(() => parseEd25519PrivateKey(ec)).toThrow(/Ed25519/);
  });
});
