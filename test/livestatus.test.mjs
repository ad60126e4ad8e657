// The live status reads the WAV ffmpeg is writing: a read that fails (EIO from a dying disk, which
// cannot be made to happen here on demand, so the failing call is injected) costs the status, never the
// recording. The WAV is a real one written by ffmpeg.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { readWavTail } from '../dist/record-audio.mjs'
import { tempDir, run, readWav, requireBinary } from './helpers.mjs'

function realWav() {
  requireBinary('ffmpeg')
  const file = path.join(tempDir(), 'tone.wav')
  const made = run('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'sine=frequency=440:duration=1', '-ac', '1', file])
  assert.equal(made.status, 0, made.stderr)
  return file
}

const realReads = (calls) => ({
  open: (file) => fs.openSync(file, 'r'),
  size: (fd) => fs.fstatSync(fd).size,
  read: (fd, into, length, position) => fs.readSync(fd, into, 0, length, position),
  close: (fd) => {
    calls.push(fd)
    fs.closeSync(fd)
  },
  dataOffset: (file) => readWav(file).dataOffset,
})

const eio = () => Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' })

function tailOf(file) {
  return { file, frameBytes: 2, chunk: Buffer.alloc(4800 * 2), fd: null, readFrom: null, bytes: 0, failed: null }
}

for (const failing of ['read', 'size']) {
  test(`the live status's ${failing === 'read' ? 'readSync' : 'fstatSync'} failing with EIO: no throw, the error kept, the descriptor dropped, the next look reads again`, () => {
    const file = realWav()
    const wav = readWav(file)
    const closed = []
    const w = tailOf(file)
    const reads = realReads(closed)
    const broken = {
      ...reads,
      [failing]: () => {
        throw eio()
      },
    }
    assert.equal(readWavTail(w, broken), null)
    assert.equal(w.failed, 'EIO')
    assert.equal(w.fd, null, 'the descriptor is dropped')
    assert.equal(closed.length, 1, 'and closed')
    const length = readWavTail(w, reads)
    assert.equal(length, w.chunk.length, 'the newest 0.1 s read once the disk answers again')
    assert.equal(w.failed, null)
    assert.equal(w.readFrom, wav.dataOffset + wav.samples * 2)
    const samples = new Int16Array(w.chunk.buffer, w.chunk.byteOffset, length / 2)
    const expected = new Int16Array(fs.readFileSync(file).buffer.slice(w.readFrom - length, w.readFrom))
    assert.deepEqual(samples, expected, 'the bytes at the end of the file')
    fs.closeSync(w.fd)
  })
}

test('the live status before ffmpeg has made the WAV: nothing read, nothing to say', () => {
  const w = tailOf(path.join(tempDir(), 'not-yet.wav'))
  assert.equal(readWavTail(w), null)
  assert.equal(w.failed, null)
  assert.equal(w.fd, null)
})

test('the live status reads only what was added since its last look', () => {
  const file = realWav()
  const w = tailOf(file)
  assert.equal(readWavTail(w), w.chunk.length)
  assert.equal(readWavTail(w), null, 'nothing new')
  fs.appendFileSync(file, Buffer.alloc(100 * 2 + 1)) // 100 frames and half of one
  assert.equal(readWavTail(w), 200, 'the whole frames only')
  fs.closeSync(w.fd)
})
