// Issue 23, attacked on purpose: a stop that is ignored, two runs in one WAV, a ✔ on a broken record, an
// orphan, a repair that changed audio, reasons that mislead. Real ffmpeg, a real PulseAudio server, real
// files and FIFOs. The pass rule of each: nothing recorded is lost or overwritten, no process is left, one
// clear line with the fix, a non-zero exit, no ✔ on a figure that is not what the files say.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
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
  startPulse,
  listing,
  decodeAudio,
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
  // The next run names it (an unfinished mux left by a killed run), and leaves it where it is.
  const left = partial()
  const next = muxLater(cwd, ['a-sync.json', '--video', videoFile, '--print'])
  assert.equal(next.status, 0, next.stderr)
  const named = new RegExp(
    `⚠ .*${left.replace(/\./g, '\\.')} is an unfinished mux left by a killed run \\(PID ${tool.child.pid}\\)`,
  )
  assert.match(next.stderr, named)
  assert.equal(partial(), left, 'named, not deleted')
})

test('4. a mux after a killed one: the partial it left (.partial-<dead PID>) is named as unfinished, kept byte for byte; the new mux finishes under the final name', () => {
  const cwd = tempDir()
  const ulidMs = Date.now() - 60000
  const video = mp4In(cwd, ulidMs)
  const { syncPath } = syncBeside(cwd, ulidMs)
  const dead = spawnSync('true').pid // a PID that was a process and is no more
  const left = video.replace(/\.mp4$/, `-with-audio.partial-${dead}.mp4`)
  fs.writeFileSync(left, Buffer.alloc(1000, 1))
  const r = muxLater(cwd, [syncPath, '--video', video])
  assert.equal(r.status, 0, r.stderr)
  assert.match(
    r.stderr,
    new RegExp(
      `⚠ .*-with-audio\\.partial-${dead}\\.mp4 is an unfinished mux left by a killed run \\(PID ${dead}\\), not a finished file`,
    ),
  )
  assert.match(r.stderr, /✔ Muxed: .*-with-audio\.mp4 /)
  assert.deepEqual(fs.readFileSync(left), Buffer.alloc(1000, 1), 'the partial kept as it was')
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

/** A minimal sync file for `mux` beside a WAV of `seconds` of a tone, its start `beforeS` after `ulidMs`. */
function syncBeside(cwd, ulidMs, seconds = 3) {
  const wav = path.join(cwd, 'a.wav')
  assert.equal(run('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'sine=r=48000', '-t', `${seconds}`, wav]).status, 0)
  const sync = { audioFile: wav, audioStartEpochS: ulidMs / 1000 + 0.1, audioSampleRate: 48000 }
  fs.writeFileSync(path.join(cwd, 'a-sync.json'), JSON.stringify(sync))
  return { wav, syncPath: path.join(cwd, 'a-sync.json') }
}

/** A real mp4 of `seconds` at 30 fps in `feed/` under a ULID name. */
function mp4In(cwd, ulidMs, extra = ['-t', '3']) {
  const file = path.join(cwd, 'feed', `${ulidAt(ulidMs)}.mp4`)
  fs.mkdirSync(path.dirname(file), { recursive: true })
  const args = ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc=size=32x24:rate=30', ...extra, '-c:v', 'mpeg4']
  assert.equal(run('ffmpeg', [...args, '-tag:v', 'mp4v', file]).status, 0)
  return file
}

test('6. the sound server killed mid-recording: the WAV is kept, the line says the sound server went away (not ffmpeg’s library error), exit 1, no ffmpeg left', async () => {
  const own = await startPulse() // a server of this test's own, to kill
  const cwd = tempDir()
  const wavPath = path.join(cwd, 'a.wav')
  const tool = startTool(['--out', 'a.wav', '--format', 'pulse', '--device', own.source], { cwd, env: own.env })
  try {
    await tool.recording(wavPath)
    await sleep(1500)
  } finally {
    await own.stop()
  }
  const ended = await Promise.race([tool.exited, sleep(15000).then(() => null)])
  if (!ended) process.kill(-tool.child.pid, 'SIGKILL')
  assert.ok(ended, `the tool ended when its server went away: ${tool.stderr}`)
  assert.equal(ended.code, 1, ended.stderr)
  assert.match(
    ended.stderr,
    /✖ The sound server went away mid-recording \(pactl info no longer answers\): start it again/,
  )
  assert.doesNotMatch(ended.stderr, /Generic error in an external library/)
  assert.deepEqual(ticks(ended.stderr), [])
  const wav = readWav(wavPath)
  assert.ok(wav.samples > 48000, `the samples are kept: ${wav.samples}`)
  assert.equal(wav.dataOffset + wav.dataSize, wav.fileBytes, 'the WAV finalized')
  await waitFor(() => ffmpegPidsIn(cwd).length === 0, 3000, 'ffmpeg to exit')
})

test('6. --ffmpeg /bin/false: said to be no ffmpeg (not a device failure), --ffmpeg <a folder>: said to be a folder (not one you cannot write to); non-zero exit, nothing left', () => {
  const cwd = tempDir()
  const folder = path.join(cwd, 'bin')
  fs.mkdirSync(folder)
  const record = (ffmpeg) =>
    run(process.execPath, [TOOL, '--out', 'a.wav', '--format', 'pulse', '--device', pulse.source, '--ffmpeg', ffmpeg], {
      cwd,
      env: pulse.env,
      timeout: 30000,
      killSignal: 'SIGKILL',
    })
  const notRun = record('/bin/false')
  assert.equal(notRun.status, 1, notRun.stderr)
  assert.match(
    notRun.stderr,
    /✖ \/bin\/false does not run as ffmpeg \(its -version printed no "ffmpeg version"; exit 1\): pass --ffmpeg/,
  )
  assert.doesNotMatch(notRun.stderr, /could not record from|List the devices/)
  const dir = record(folder)
  assert.notEqual(dir.status, 0, dir.stderr)
  assert.match(dir.stderr, /--ffmpeg .*bin is a folder, not the ffmpeg program: pass the program itself/)
  assert.doesNotMatch(dir.stderr, /folder you can write to|Permission denied/)
  for (const r of [notRun, dir]) assert.deepEqual(ticks(r.stderr), [])
  assert.deepEqual(listing(cwd), ['bin'], 'no WAV, no sync file left')
  // mux with it: the same reason, not ffmpeg's missing message.
  const ulidMs = Date.now() - 60000
  const video = mp4In(cwd, ulidMs)
  const { syncPath } = syncBeside(cwd, ulidMs)
  const before = listing(cwd)
  const mux = muxLater(cwd, [syncPath, '--video', video, '--ffmpeg', '/bin/false'])
  assert.equal(mux.status, 1, mux.stderr)
  assert.match(mux.stderr, /✖ Mux failed: \/bin\/false does not run as ffmpeg/)
  assert.doesNotMatch(mux.stderr, /no message/)
  assert.deepEqual(listing(cwd), before, 'nothing written')
})

test('6. repair on a 2 KB WAV with 0 bits per sample: one line naming the fmt chunk (not "past 4 GiB"), exit 2, the file untouched', () => {
  const cwd = tempDir()
  const file = path.join(cwd, 'zero-bits.wav')
  const header = Buffer.alloc(44)
  header.write('RIFF', 0, 'latin1')
  header.writeUInt32LE(0xffffffff, 4)
  header.write('WAVEfmt ', 8, 'latin1')
  header.writeUInt32LE(16, 16)
  header.writeUInt16LE(1, 20) // PCM
  header.writeUInt16LE(1, 22) // mono
  header.writeUInt32LE(48000, 24)
  header.writeUInt32LE(0, 28)
  header.writeUInt16LE(0, 32)
  header.writeUInt16LE(0, 34) // 0 bits per sample
  header.write('data', 36, 'latin1')
  header.writeUInt32LE(0xffffffff, 40)
  const bytes = Buffer.concat([header, Buffer.alloc(2048 - 44, 7)])
  fs.writeFileSync(file, bytes)
  const r = run(process.execPath, [TOOL, 'repair', file], { cwd, timeout: 15000 })
  assert.equal(r.status, 2, r.stderr)
  assert.match(
    r.stderr,
    /fmt chunk says 0 bits per sample and 1 channels: not a WAV a recording wrote; it was left as it is/,
  )
  assert.doesNotMatch(r.stderr, /4 GiB/)
  assert.deepEqual(ticks(r.stderr), [])
  assert.deepEqual(fs.readFileSync(file), bytes)
})

test('6. SIGTERM during mux’s wait for an unfinished video: said to be stopped by SIGTERM (not "not finished in time"), exit 1, nothing muxed', async () => {
  const cwd = tempDir()
  const ulidMs = Date.now() - 60000
  const video = mp4In(cwd, ulidMs)
  // The moov cut off: what TracktorLive's file is while it records (ftyp, free, mdat).
  const whole = fs.readFileSync(video)
  const moovAt = whole.indexOf('moov') - 4
  assert.ok(moovAt > 0)
  fs.writeFileSync(video, whole.subarray(0, moovAt))
  const { syncPath } = syncBeside(cwd, ulidMs)
  const before = listing(cwd)
  const tool = startTool(['mux', syncPath, '--video', video, '--wait', '120'], { cwd, env: pulse.env })
  await waitFor(() => /Waiting up to 120 s/.test(tool.stderr) || tool.child.exitCode !== null, 15000, 'the wait')
  process.kill(tool.child.pid, 'SIGTERM')
  const ended = await Promise.race([tool.exited, sleep(10000).then(() => null)])
  if (!ended) process.kill(tool.child.pid, 'SIGKILL')
  assert.ok(ended, 'the signal ended the wait')
  assert.equal(ended.code, 1, ended.stderr)
  assert.match(ended.stderr, /✖ Stopped by SIGTERM before the mux \(while waiting for the video\): nothing was muxed/)
  assert.doesNotMatch(ended.stderr, /not finished in time/)
  assert.deepEqual(ticks(ended.stderr), [])
  assert.deepEqual(listing(cwd), before, 'nothing muxed, nothing left')
})

test('6. --sync-out equal to --out: refused before recording (one line, exit 2), no WAV, no sync file, no ffmpeg', () => {
  const cwd = tempDir()
  for (const [out, syncOut] of [
    ['a.wav', 'a.wav'],
    ['a.wav', `${cwd}/a.wav`],
  ]) {
    const r = run(
      process.execPath,
      [TOOL, '--out', out, '--sync-out', syncOut, '--format', 'pulse', '--device', pulse.source],
      {
        cwd,
        env: pulse.env,
        timeout: 15000,
        killSignal: 'SIGKILL',
      },
    )
    assert.equal(r.status, 2, r.stderr)
    assert.match(
      r.stderr,
      /--sync-out .*a\.wav is the WAV's own name: give the sync file another name \(e\.g\. a-sync\.json\)/,
    )
    assert.doesNotMatch(r.stderr, /Recording/)
    assert.deepEqual(fs.readdirSync(cwd), [])
  }
  assert.deepEqual(ffmpegPidsIn(cwd), [])
})

test('6. mux on a moov-only mp4 with no frames: a plain line (no video frames), not ffmpeg’s "trailing ?" advice; exit 1, nothing muxed, no ✔', () => {
  const cwd = tempDir()
  const ulidMs = Date.now() - 60000
  const video = mp4In(cwd, ulidMs, ['-frames:v', '0'])
  const { syncPath } = syncBeside(cwd, ulidMs)
  const before = listing(cwd)
  const r = muxLater(cwd, [syncPath, '--video', video])
  assert.equal(r.status, 1, r.stderr)
  assert.match(
    r.stderr,
    /✖ Not muxed: .*\.mp4 holds no video frames \(no video stream in it\): nothing to put the audio on/,
  )
  assert.doesNotMatch(r.stderr, /trailing '\?'|Stream map/)
  assert.deepEqual(ticks(r.stderr), [])
  assert.deepEqual(listing(cwd), before)
})

test('6. a 0-byte or text <ULID>.mp4 as the newest recording: named as not a video at once (with --mux or without), not waited on for the whole --wait; exit 1, the WAV kept', async () => {
  const cases = [
    { content: '', mux: ['--mux', '--wait', '120'] },
    { content: 'this is a text file, not a video\n', mux: ['--mux', '--wait', '120'] },
    { content: 'this is a text file, not a video\n', mux: [] }, // without --mux it is not "not finalized" either
  ]
  for (const { content, mux } of cases) {
    const cwd = tempDir()
    const feedDir = path.join(cwd, 'feed')
    fs.mkdirSync(feedDir)
    const video = path.join(feedDir, `${ulidAt(Date.now())}.mp4`)
    fs.writeFileSync(video, content)
    const tool = startTool(['feed', '--format', 'pulse', '--device', pulse.source, ...mux], { cwd, env: pulse.env })
    await tool.recording(path.join(cwd, 'feed-audio.wav'))
    await sleep(1500)
    const stopAtMs = Date.now()
    tool.ctrlC()
    const ended = await Promise.race([tool.exited, sleep(30000).then(() => null)])
    if (!ended) process.kill(-tool.child.pid, 'SIGKILL')
    assert.ok(ended, `not waited on for --wait: ${tool.stderr}`)
    assert.ok(Date.now() - stopAtMs < 15000, `said within seconds: ${Date.now() - stopAtMs} ms`)
    assert.equal(ended.code, 1, ended.stderr)
    assert.match(
      ended.stderr,
      /✖ .*\.mp4 is not a video \((it holds 0 bytes, unchanged for \d+ s|its first bytes are no mp4 box)/,
    )
    assert.doesNotMatch(ended.stderr, /not finished in time|not finalized/)
    assert.ok(readWav(path.join(cwd, 'feed-audio.wav')).samples > 48000, 'the WAV kept')
    assert.equal(fs.readFileSync(video, 'utf8'), content, 'the file left as it was')
    await waitFor(() => ffmpegPidsIn(cwd).length === 0, 3000, 'ffmpeg to exit')
  }
})

test('6. --all-videos with a text <ULID>.mp4 beside the real recording: the text file named as not a video, the real one still synced and muxed; exit 1, no ✔ for the text file', async () => {
  const s = await recorded()
  const audioStartMs = s.sync.audioStartEpochS * 1000
  const text = path.join(s.cwd, 'feed', `${ulidAt(Math.round(audioStartMs + 500))}.mp4`) // minted inside the audio
  fs.writeFileSync(text, 'this is a text file, not a video\n')
  const muxed = muxLater(s.cwd, [s.syncPath, '--all-videos', '--mux'])
  assert.equal(muxed.status, 1, muxed.stderr)
  assert.match(muxed.stderr, new RegExp(`✖ .*${path.basename(text)} is not a video \\(its first bytes are no mp4 box`))
  assert.match(muxed.stderr, /✔ Muxed: /, 'the real recording still muxed')
  assert.ok(fs.existsSync(s.videoPath.replace(/\.mp4$/, '-with-audio.mp4')), 'the real one muxed beside it')
  assert.equal(fs.readFileSync(text, 'utf8'), 'this is a text file, not a video\n', 'the text file left as it was')
  assert.ok(
    !ticks(muxed.stderr).some((line) => line.includes(path.basename(text, '.mp4').slice(-4))),
    ticks(muxed.stderr).join('\n'),
  )
})

test('L2. mux --mux where ffprobe cannot read the video: one line with ffprobe\'s own reason (not "no video frames"), exit 1, nothing muxed', async () => {
  const s = await recorded()
  const tools = path.join(s.cwd, 'tools')
  fs.mkdirSync(tools)
  const ffmpeg = spawnSync('sh', ['-c', 'command -v ffmpeg'], { encoding: 'utf8' }).stdout.trim()
  fs.symlinkSync(ffmpeg, path.join(tools, 'ffmpeg')) // the real ffmpeg; its sibling ffprobe fails as a broken one would
  fs.writeFileSync(path.join(tools, 'ffprobe'), '#!/bin/sh\necho "ffprobe: cannot read this disk" >&2\nexit 1\n', {
    mode: 0o755,
  })
  const muxed = muxLater(s.cwd, [s.syncPath, '--mux', '--ffmpeg', path.join(tools, 'ffmpeg')])
  assert.equal(muxed.status, 1, muxed.stderr)
  assert.match(muxed.stderr, /✖ Not muxed: ffprobe could not read .*\.mp4: ffprobe: cannot read this disk\./)
  assert.doesNotMatch(muxed.stderr, /no video frames|✔ Muxed/)
  assert.equal(fs.existsSync(s.videoPath.replace(/\.mp4$/, '-with-audio.mp4')), false, 'nothing muxed')
})

const sha256 = (buffer) => createHash('sha256').update(buffer).digest('hex')

/** The samples of a WAV by its own data chunk (read here, not by the tool), and their checksum. */
function samplesOf(file) {
  const wav = readWav(file)
  const bytes = fs.readFileSync(file).subarray(wav.dataOffset, wav.dataOffset + wav.dataSize)
  return { ...wav, sha: sha256(bytes) }
}

test('5. repair on a WAV whose RIFF size is 100 bytes too big, a LIST chunk after its data: only the RIFF size written, the 1000 samples and the LIST chunk kept (checksums)', () => {
  const cwd = tempDir()
  const file = path.join(cwd, 'list.wav')
  const tone = ['-v', 'error', '-f', 'lavfi', '-i', 'sine=r=48000', '-af', 'atrim=end_sample=1000', '-bitexact']
  assert.equal(run('ffmpeg', [...tone, file]).status, 0)
  const made = fs.readFileSync(file)
  const list = Buffer.alloc(20) // LIST INFO ICMT "note": 20 bytes, ten samples' worth
  list.write('LIST', 0, 'latin1')
  list.writeUInt32LE(12, 4)
  list.write('INFOICMT', 8, 'latin1')
  list.writeUInt32LE(4, 16)
  const note = Buffer.from('note', 'latin1')
  const bytes = Buffer.concat([made, list, note])
  bytes.writeUInt32LE(bytes.length - 8 + 100, 4) // the RIFF size 100 bytes too big
  fs.writeFileSync(file, bytes)
  const before = samplesOf(file)
  assert.equal(before.samples, 1000)
  const r = run(process.execPath, [TOOL, 'repair', file], { cwd, timeout: 15000 })
  assert.equal(r.status, 0, r.stderr)
  assert.match(
    r.stderr,
    /✔ Repaired .*list\.wav: RIFF header for 0\.021 s of audio \(only its RIFF size, now the file's/,
  )
  const after = samplesOf(file)
  assert.equal(after.samples, 1000, 'the data did not grow by the LIST chunk')
  assert.equal(after.sha, before.sha, 'the samples’ checksum is the same')
  assert.equal(after.riffSize, bytes.length - 8, 'the RIFF size is the file’s')
  const repaired = fs.readFileSync(file)
  assert.equal(repaired.length, bytes.length)
  assert.deepEqual(repaired.subarray(after.dataOffset + after.dataSize), Buffer.concat([list, note]), 'LIST kept')
  assert.deepEqual(repaired.subarray(8), bytes.subarray(8), 'nothing but the RIFF size changed')
  assert.equal(decodeAudio(file).length, 1000, 'ffmpeg reads the 1000 samples')
})

test('5. repair on a WAV ffmpeg is still writing: refused (another process has it open for writing), nothing changed; once ffmpeg is killed, repaired with the samples’ checksum kept', async () => {
  const cwd = tempDir()
  const file = path.join(cwd, 'live.wav')
  const args = ['-v', 'error', '-re', '-f', 'lavfi', '-i', 'sine=r=48000', '-t', '60', '-c:a', 'pcm_s16le']
  const writer = spawn('ffmpeg', [...args, '-flush_packets', '1', file], { cwd, stdio: 'ignore' })
  try {
    await waitFor(() => fs.existsSync(file) && fs.statSync(file).size > 10000, 10000, 'ffmpeg to write')
    const head = fs.readFileSync(file).subarray(0, 44)
    const r = run(process.execPath, [TOOL, 'repair', file], { cwd, timeout: 15000 })
    assert.equal(r.status, 2, r.stderr)
    assert.match(
      r.stderr,
      new RegExp(`another process has it open for writing \\(ffmpeg, PID ${writer.pid}\\); nothing was changed`),
    )
    assert.deepEqual(ticks(r.stderr), [])
    assert.deepEqual(fs.readFileSync(file).subarray(0, 44), head, 'the header untouched')
  } finally {
    writer.kill('SIGKILL')
  }
  await waitFor(() => !alive(writer.pid), 5000, 'ffmpeg to die')
  const before = fs.readFileSync(file)
  const dataOffset = before.indexOf('data') + 8
  const frames = Math.floor((before.length - dataOffset) / 2)
  const samplesSha = sha256(before.subarray(dataOffset, dataOffset + frames * 2))
  const r = run(process.execPath, [TOOL, 'repair', file], { cwd, timeout: 15000 })
  assert.equal(r.status, 0, r.stderr)
  assert.match(r.stderr, /✔ Repaired .*live\.wav: RIFF header for [\d.]+ s of audio \(the samples were not touched\)/)
  const after = samplesOf(file)
  assert.equal(after.samples, frames)
  assert.equal(after.sha, samplesSha)
})

test('5. repair on a WAV another process keeps appending to (opening and closing it each time): refused as still being written, nothing changed', async () => {
  const cwd = tempDir()
  const file = path.join(cwd, 'grow.wav')
  const tone = ['-v', 'error', '-f', 'lavfi', '-i', 'sine=r=48000', '-t', '0.5', '-c:a', 'pcm_s16le']
  assert.equal(run('ffmpeg', [...tone, file]).status, 0)
  const bytes = fs.readFileSync(file)
  bytes.writeUInt32LE(0xffffffff, 4)
  bytes.writeUInt32LE(0xffffffff, bytes.indexOf('data') + 4)
  fs.writeFileSync(file, bytes)
  const appender = spawn('sh', ['-c', `while :; do printf '\\0\\0\\0\\0' >> ${file}; sleep 0.05; done`], {
    detached: true,
    stdio: 'ignore',
  })
  try {
    await sleep(300)
    const r = run(process.execPath, [TOOL, 'repair', file], { cwd, timeout: 15000 })
    assert.equal(r.status, 2, r.stderr)
    assert.match(
      r.stderr,
      /(it is still being written \(\d+ bytes more in 0\.5 s\)|another process has it open for writing .*); nothing was changed/,
    )
    assert.deepEqual(fs.readFileSync(file).subarray(0, 44), bytes.subarray(0, 44), 'the header untouched')
  } finally {
    process.kill(-appender.pid, 'SIGKILL')
  }
})

test('3. mux on a sync file whose video fields, timing or card clock make no sense, or whose audioDurationS is not the WAV’s: one line naming the field, exit 2, no ✔, nothing muxed', async () => {
  const s = await recorded()
  const original = fs.readFileSync(s.syncPath, 'utf8')
  const record = JSON.parse(original)
  assert.ok(record.audioDurationS > 1, `the record has the WAV's length: ${record.audioDurationS}`)
  const wav = readWav(s.wavPath)
  const wavS = wav.dataSize / 2 / 48000
  const cases = [
    [{ offsetS: 1e12 }, /its offsetS is 1000000000000, outside -10000000…10000000/],
    [
      { videos: [{ videoFile: record.videoFile, videoFinalized: true, offsetS: 0.2, cameraLatencyS: 99 }] },
      /its videos\[0\]\.cameraLatencyS is 99, outside -10…10/,
    ],
    [
      { timing: { ...record.timing, clockOffsetS: 1e9 } },
      /its timing\.clockOffsetS is 1000000000, outside -86400…86400/,
    ],
    [{ audioClockRatio: 2 }, /its audioClockRatio is 2, outside 0\.99…1\.01/],
    [{ videoFrames: 2.5 }, /its videoFrames is 2\.5, outside 0…10000000000, whole/],
    [
      { audioDurationS: record.audioDurationS + 5 },
      new RegExp(`audioDurationS [\\d.]+ s is not .*feed-audio\\.wav's ${wavS.toFixed(3).replace('.', '\\.')} s`),
    ],
  ]
  for (const [k, [change, line]] of cases.entries()) {
    const bad = path.join(s.cwd, `bad-${k}-sync.json`)
    fs.writeFileSync(bad, JSON.stringify({ ...record, ...change }))
    const before = listing(s.cwd)
    const r = muxLater(s.cwd, [bad])
    assert.equal(r.status, 2, r.stderr)
    assert.match(r.stderr, line)
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`)
    assert.deepEqual(ticks(r.stderr), [], 'no ✔ on a record that makes no sense')
    assert.deepEqual(listing(s.cwd), before, 'nothing muxed')
  }
  assert.equal(fs.readFileSync(s.syncPath, 'utf8'), original)
  // The record as written still muxes: the checks refuse only what no recording writes.
  const r = muxLater(s.cwd, [s.syncPath])
  assert.equal(r.status, 0, r.stderr)
  assert.match(r.stderr, /✔ Muxed: /)
})
