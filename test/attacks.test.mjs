// Issue 23, attacked on purpose: a stop that is ignored, two runs in one WAV, a ✔ on a broken record, an
// orphan, a repair that changed audio, reasons that mislead. Real ffmpeg, a real PulseAudio server, real
// files and FIFOs. The pass rule of each: nothing recorded is lost or overwritten, no process is left, one
// clear line with the fix, a non-zero exit, no ✔ on a figure that is not what the files say.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  usePulse,
  startTool,
  tempDir,
  readWav,
  run,
  waitFor,
  alive,
  ffmpegPidsIn,
  ulidAt,
  TOOL,
  recordThenStop,
  assertCompleteStop,
} from './helpers.mjs'

const pulse = usePulse()

const mkfifo = (file) => assert.equal(spawnSync('mkfifo', [file]).status, 0, `mkfifo ${file}`)

/** A real recording (stand-in video, 2 s, ctrl-c): its folder, WAV, sync file and video, for `mux` to read. */
async function recorded() {
  const s = await recordThenStop(pulse, (tool) => tool.ctrlC())
  assertCompleteStop(s)
  const syncPath = path.join(s.cwd, 'feed-audio-sync.json')
  return {
    ...s,
    syncPath,
    videoPath: path.join(s.cwd, 'feed', s.sync.videoFile ? path.basename(s.sync.videoFile) : ''),
  }
}

/** `record-audio mux …` in `cwd`, bounded so that a hang fails the test instead of freezing it. */
function muxLater(cwd, args, timeoutMs = 30000) {
  return run(process.execPath, [TOOL, 'mux', ...args], {
    cwd,
    env: pulse.env,
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
  })
}

/** The stderr lines that carry a verdict or a fix (the tool's one line), for the assertion messages. */
const ticks = (text) => text.split('\n').filter((line) => line.includes('✔'))

test('1. a FIFO named <ULID>.csv appearing in the feed folder while recording: ctrl-c still stops at once, WAV finalized, no ffmpeg left', async () => {
  const cwd = tempDir()
  const feedDir = path.join(cwd, 'feed')
  fs.mkdirSync(feedDir)
  const wavPath = path.join(cwd, 'feed-audio.wav')
  const tool = startTool(['feed', '--format', 'pulse', '--device', pulse.source], { cwd, env: pulse.env })
  await tool.recording(wavPath)
  const fifo = path.join(feedDir, `${ulidAt(Date.now())}.csv`)
  mkfifo(fifo)
  await sleep(2000) // several CSV looks (every 200 ms) on the FIFO
  const stopAtMs = Date.now()
  tool.ctrlC()
  const ended = await Promise.race([tool.exited, sleep(8000).then(() => null)])
  if (!ended) process.kill(-tool.child.pid, 'SIGKILL')
  assert.ok(ended, `the stop was honoured (it hung on the FIFO): ${tool.stderr}`)
  assert.ok(Date.now() - stopAtMs < 8000)
  const wav = readWav(wavPath)
  assert.equal(wav.dataOffset + wav.dataSize, wav.fileBytes, 'data size finalized')
  assert.ok(wav.samples > 48000, `the samples are kept: ${wav.samples}`)
  await waitFor(() => ffmpegPidsIn(cwd).length === 0, 3000, 'ffmpeg to exit')
  assert.equal(fs.statSync(fifo).isFIFO(), true, 'the FIFO is left as it was')
})

test('1. mux --video <a FIFO named ULID.mp4>: refused at once with one line, non-zero exit, no ✔, nothing written', async () => {
  const s = await recorded()
  const fifo = path.join(s.cwd, `${ulidAt(Date.now())}.mp4`)
  mkfifo(fifo)
  const before = fs.readdirSync(s.cwd).sort()
  const r = muxLater(s.cwd, [s.syncPath, '--video', fifo])
  assert.notEqual(r.error?.code, 'ETIMEDOUT', 'mux hung on the FIFO')
  assert.equal(r.status, 2, r.stderr)
  assert.match(r.stderr, /is not a regular file.*give the mp4 itself/)
  assert.deepEqual(ticks(r.stderr), [])
  assert.deepEqual(fs.readdirSync(s.cwd).sort(), before)
})

test('1. mux on a FIFO given as the sync file: refused at once with one line, non-zero exit', async () => {
  const cwd = tempDir()
  const fifo = path.join(cwd, 'x-sync.json')
  mkfifo(fifo)
  const r = muxLater(cwd, [fifo], 15000)
  assert.notEqual(r.error?.code, 'ETIMEDOUT', 'mux hung on the FIFO')
  assert.equal(r.status, 2, r.stderr)
  assert.match(r.stderr, /is not a regular file/)
})

test('2. two runs started at the same moment with the same --out (different --sync-out): one records, the other is refused before recording, one clear line, exit 2, no ✔', async () => {
  for (let attempt = 0; attempt < 3; attempt++) {
    const cwd = tempDir()
    const args = (k) => ['--out', 'same.wav', '--sync-out', `s${k}.json`, '--format', 'pulse', '--device', pulse.source]
    const tools = [0, 1].map((k) => startTool(args(k), { cwd, env: pulse.env }))
    await sleep(2500)
    for (const tool of tools) if (tool.child.exitCode === null) tool.ctrlC()
    const results = await Promise.all(tools.map((tool) => tool.exited))
    const won = results.filter((r) => r.code === 0)
    const lost = results.filter((r) => r.code !== 0)
    assert.equal(won.length, 1, results.map((r) => r.stderr).join('\n---\n'))
    assert.equal(lost.length, 1)
    assert.equal(lost[0].code, 2, lost[0].stderr)
    assert.match(lost[0].stderr, /same\.wav exists and is never overwritten: choose another --out/)
    assert.deepEqual(ticks(lost[0].stderr), [], 'the refused run claims nothing')
    const syncs = ['s0.json', 's1.json'].filter((f) => fs.existsSync(path.join(cwd, f)))
    assert.equal(syncs.length, 1, `one sync file names same.wav: ${syncs}`)
    const wav = readWav(path.join(cwd, 'same.wav'))
    assert.equal(wav.dataOffset + wav.dataSize, wav.fileBytes, 'the winner’s WAV finalized')
    await waitFor(() => ffmpegPidsIn(cwd).length === 0, 3000, 'ffmpeg to exit')
  }
})

test('4. SIGKILL of the tool during the mux: the mux ffmpeg dies with it (no orphan), the partial file is named .partial-, originals untouched', async () => {
  const cwd = tempDir()
  const ulidMs = Date.now() - 700000
  const videoFile = path.join(cwd, 'feed', `${ulidAt(ulidMs)}.mp4`)
  fs.mkdirSync(path.dirname(videoFile))
  // Ten minutes of both, so that the mux lasts long enough to be killed in the act.
  const video = ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc=size=32x24:rate=30', '-t', '600', '-c:v', 'mpeg4']
  assert.equal(run('ffmpeg', [...video, '-tag:v', 'mp4v', videoFile]).status, 0)
  const wav = path.join(cwd, 'a.wav')
  assert.equal(run('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'sine=r=48000', '-t', '600', wav]).status, 0)
  const sync = { audioFile: wav, audioStartEpochS: ulidMs / 1000 + 0.1, audioSampleRate: 48000 }
  fs.writeFileSync(path.join(cwd, 'a-sync.json'), JSON.stringify(sync))
  const sizes = [fs.statSync(videoFile).size, fs.statSync(wav).size]
  const tool = startTool(['mux', 'a-sync.json', '--video', videoFile], { cwd, env: pulse.env })
  const partial = () => fs.readdirSync(path.dirname(videoFile)).find((f) => f.includes('.partial-'))
  await waitFor(() => partial() || tool.child.exitCode !== null, 30000, 'the mux to start writing')
  assert.ok(partial(), `the mux was still running: ${tool.stderr}`)
  const [muxPid] = ffmpegPidsIn(cwd)
  assert.ok(muxPid, 'the mux ffmpeg found')
  process.kill(tool.child.pid, 'SIGKILL')
  await tool.exited
  await waitFor(() => !alive(muxPid), 5000, 'the mux ffmpeg to die with the tool')
  assert.match(partial() ?? '', /\.partial-\d+\.mp4$/, 'what is left is named partial, never the final name')
  assert.ok(!fs.existsSync(videoFile.replace(/\.mp4$/, '-with-audio.mp4')), 'no file under the finished name')
  assert.deepEqual([fs.statSync(videoFile).size, fs.statSync(wav).size], sizes)
})

test("3. mux on a sync file whose audioSampleRate is 0, or whose rate is not the WAV header's: one line naming the field, exit 2, no ✔, nothing muxed", async () => {
  const s = await recorded()
  const original = fs.readFileSync(s.syncPath, 'utf8')
  for (const [rate, line] of [
    [0, /audioSampleRate is 0, outside/],
    [44100, /audioSampleRate 44100 is not .*feed-audio\.wav's 48000 Hz/],
  ]) {
    const bad = path.join(s.cwd, `bad-${rate}-sync.json`)
    fs.writeFileSync(bad, JSON.stringify({ ...JSON.parse(original), audioSampleRate: rate }))
    const before = fs.readdirSync(path.join(s.cwd, 'feed')).sort()
    const r = muxLater(s.cwd, [bad])
    assert.equal(r.status, 2, r.stderr)
    assert.match(r.stderr, line)
    assert.deepEqual(ticks(r.stderr), [], 'no ✔ on a record that makes no sense')
    assert.deepEqual(fs.readdirSync(path.join(s.cwd, 'feed')).sort(), before, 'nothing muxed')
  }
  assert.equal(fs.readFileSync(s.syncPath, 'utf8'), original)
})

test('6. mux on a sync file holding `null`: one line saying it is not a sync file (no JavaScript message), exit 2', () => {
  const cwd = tempDir()
  fs.writeFileSync(path.join(cwd, 'n-sync.json'), 'null')
  const r = muxLater(cwd, ['n-sync.json'])
  assert.equal(r.status, 2, r.stderr)
  assert.match(r.stderr, /is not a record-audio sync file \(it is not a JSON object\)/)
  assert.doesNotMatch(r.stderr, /Cannot read|properties of null|TypeError/)
})
