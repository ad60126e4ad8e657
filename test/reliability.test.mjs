// Nothing lost: devices and disks that fail, bad input, and hostile names, with the real ffmpeg
// and a real PulseAudio server. Each test name states the outcome.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  startPulse,
  usePulse,
  startTool,
  tempDir,
  readWav,
  ffprobeStreams,
  decodeAudio,
  run,
  waitFor,
  ffmpegPidsIn,
  requireBinary,
  TOOL,
  ulidAt,
  listing,
  recordThenStop,
  recordingFor,
  assertCompleteStop,
} from './helpers.mjs'

const pulse = usePulse()

/** A file's size, 0 when it is not there. */
const fileBytes = (file) => (fs.existsSync(file) ? fs.statSync(file).size : 0)

test('an earlier recording left unfinished under the default name: kept as it is, the new one goes to -2, and the tool names the repair', async () => {
  const cwd = tempDir()
  const earlier = path.join(cwd, 'feed-audio.wav')
  assert.equal(
    run('ffmpeg', [
      '-v',
      'error',
      '-f',
      'lavfi',
      '-i',
      'sine=r=48000:d=1',
      '-c:a',
      'pcm_s16le',
      '-rf64',
      'auto',
      earlier,
    ]).status,
    0,
  )
  const bytes = fs.readFileSync(earlier)
  bytes.writeUInt32LE(0xffffffff, 4) // the sizes as ffmpeg leaves them when killed
  bytes.writeUInt32LE(0xffffffff, readWav(earlier).dataOffset - 4)
  fs.writeFileSync(earlier, bytes)
  const tool = startTool(['feed', '--format', 'pulse', '--device', pulse.source], { cwd, env: pulse.env })
  await tool.recording(path.join(cwd, 'feed-audio-2.wav'))
  tool.ctrlC()
  const result = await tool.exited
  assert.equal(result.code, 0, result.stderr)
  assert.match(
    result.stderr,
    /feed-audio\.wav exists \(an earlier recording, kept\): recording to feed-audio-2\.wav instead/,
  )
  assert.match(result.stderr, /never finalized: record-audio repair feed-audio\.wav/)
  assert.deepEqual(fs.readFileSync(earlier), bytes)
  const repaired = run(process.execPath, [TOOL, 'repair', 'feed-audio.wav'], { cwd })
  assert.match(repaired.stderr, /Repaired feed-audio\.wav: RIFF header for 1\.000 s/)
})

test('ffmpeg killed mid-recording: the tool notices at once, says so, keeps the WAV, still writes the timing, exit 1', async () => {
  const { cwd, wavPath, tool, ffmpegPid } = await recordingFor(pulse, 1.5)
  const killedAt = Date.now()
  process.kill(ffmpegPid, 'SIGKILL')
  const result = await tool.exited
  assert.ok(Date.now() - killedAt < 1000, `noticed after ${Date.now() - killedAt} ms`)
  assert.equal(result.code, 1)
  assert.match(result.stderr, /✖ ffmpeg was killed \(SIGKILL\)\. The audio recorded so far is kept\./)
  assert.match(result.stderr, /record-audio repair feed-audio\.wav/)
  assert.ok(decodeAudio(wavPath).length > 48000 * 0.8)
  assert.equal(
    typeof JSON.parse(fs.readFileSync(path.join(cwd, 'feed-audio-sync.json'), 'utf8')).audioStartEpochS,
    'number',
  )
})

test("device unplugged (the PulseAudio server's only source removed): prints ffmpeg's error at once, keeps the WAV, exit 1", async () => {
  // With another source present PulseAudio would move the capture there instead (see README):
  // so this server has one null sink, and no tone playing into it.
  const lonely = await startPulse({ tone: false })
  try {
    const modules = run('pactl', ['list', 'short', 'modules'], { env: lonely.env }).stdout
    const moduleId = modules
      .split('\n')
      .find((line) => line.includes('module-null-sink'))
      .split('\t')[0]
    const cwd = tempDir()
    const wavPath = path.join(cwd, 'feed-audio.wav')
    const tool = startTool(['feed', '--format', 'pulse', '--device', lonely.source], { cwd, env: lonely.env })
    await tool.recording(wavPath)
    await sleep(1500)
    const unpluggedAt = Date.now()
    assert.equal(run('pactl', ['unload-module', moduleId], { env: lonely.env }).status, 0)
    const result = await tool.exited
    assert.ok(Date.now() - unpluggedAt < 1000, `noticed after ${Date.now() - unpluggedAt} ms`)
    assert.equal(result.code, 1, result.stderr)
    assert.match(
      result.stderr,
      /✖ ffmpeg stopped recording on its own \(exit \d+\): .*ra_sink\.monitor: .+\. The audio recorded so far is kept\./,
    )
    assert.ok(decodeAudio(wavPath).length > 48000)
    assert.deepEqual(ffmpegPidsIn(cwd), [])
  } finally {
    await lonely.stop()
  }
})

test('disk full while recording: a clear error, the WAV readable up to the last written sample, the timing not lost, exit 1', async () => {
  const cwd = tempDir()
  const mounted = run('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'ra-full', cwd])
  assert.equal(mounted.status, 0, `mounting a small tmpfs needs root (CI runs as root): ${mounted.stderr}`)
  try {
    const wavPath = path.join(cwd, 'feed-audio.wav')
    const tool = startTool(['feed', '--format', 'pulse', '--device', pulse.source], { cwd, env: pulse.env })
    await tool.recording(wavPath)
    const result = await Promise.race([
      tool.exited,
      sleep(15000).then(() => {
        tool.ctrlC()
        return tool.exited
      }),
    ])
    assert.equal(result.code, 1, result.stderr)
    assert.match(result.stderr, /No space left on device/)
    const decoded = decodeAudio(wavPath)
    assert.ok(
      decoded.length * 2 > fs.statSync(wavPath).size - 4096 - 100,
      `${decoded.length} samples decode from ${fs.statSync(wavPath).size} bytes`,
    )
    const syncPath = path.join(cwd, 'feed-audio-sync.json')
    const timing = fs.existsSync(syncPath) ? fs.readFileSync(syncPath, 'utf8') : result.stderr
    assert.match(timing, /"audioStartEpochS":\s*\d+\.\d+/)
  } finally {
    run('umount', [cwd])
  }
})

test('past 4 GiB the capture arguments make RF64, read back at the right length; repair rebuilds its RF64 header exactly', async () => {
  const { captureArgs, parseWavHeader, wavRepair } = await import('../dist/record-audio.mjs')
  const dir = tempDir()
  const big = path.join(dir, 'big.wav')
  const killed = path.join(dir, 'killed.wav')
  // The tool's own arguments, with a fast synthetic source in place of the device: 8 channels at
  // 384 kHz reach 4 GiB in 12 minutes of audio, written here in seconds.
  const asSynthetic = (file, seconds) => {
    const args = captureArgs({ format: 'pulse', device: 'x', sampleRate: 384000, channels: 8 }, file)
    const input = args.indexOf('-f')
    args.splice(
      input,
      args.indexOf('-i') + 2 - input,
      '-f',
      'lavfi',
      '-t',
      String(seconds),
      '-i',
      'anullsrc=r=384000:cl=7.1',
    )
    return args
  }
  const seconds = 720
  const made = run('ffmpeg', asSynthetic(big, seconds))
  assert.equal(made.status, 0, made.stderr)
  try {
    const bytes = fs.statSync(big).size
    assert.ok(bytes > 2 ** 32, `${bytes} bytes`)
    const fd = fs.openSync(big, 'r')
    const header = Buffer.alloc(4096)
    fs.readSync(fd, header, 0, 4096, 0)
    fs.closeSync(fd)
    assert.equal(header.toString('latin1', 0, 4), 'RF64')
    const info = parseWavHeader(header, bytes)
    assert.equal(info.finalized, true)
    assert.equal(info.dataBytes, seconds * 384000 * 8 * 2)
    const probed = run('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', big])
    assert.equal(Number(probed.stdout), seconds)

    // The header ffmpeg leaves when killed, for the same arguments; repaired as if the file were big.
    const realTime = asSynthetic(killed, 60)
    realTime.splice(realTime.indexOf('-f'), 0, '-re')
    const writer = spawn('ffmpeg', realTime, { stdio: 'ignore' })
    await waitFor(() => fs.existsSync(killed) && fs.statSync(killed).size > info.dataOffset, 5000, 'ffmpeg to write')
    writer.kill('SIGKILL')
    await new Promise((resolve) => writer.once('exit', resolve))
    const unfinished = fs.readFileSync(killed).subarray(0, info.dataOffset)
    assert.equal(unfinished.readUInt32LE(4), 0xffffffff, 'killed: sizes unset')
    const repair = wavRepair(Buffer.concat([unfinished, Buffer.alloc(64)]), bytes)
    assert.equal(repair.kind, 'RF64')
    const rebuilt = Buffer.from(unfinished)
    for (const patch of repair.patches) patch.bytes.copy(rebuilt, patch.offset)
    assert.deepEqual(rebuilt, header.subarray(0, info.dataOffset), "byte for byte ffmpeg's own RF64 header")
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('bad input: one line naming the problem and the fix, exit 2, nothing changed on disk', () => {
  const cwd = tempDir()
  fs.writeFileSync(path.join(cwd, 'taken.wav'), 'earlier')
  fs.mkdirSync(path.join(cwd, 'feed'))
  fs.writeFileSync(path.join(cwd, 'feed', 'clip.mp4'), 'not a recording')
  const cases = [
    [['feed', '--bogus'], /unknown flag --bogus/],
    [['feed', '--rate', 'abc'], /--rate "abc" is not a whole number/],
    [['feed', '--rate', '0'], /--rate "0"/],
    [['feed', '--channels', '0'], /--channels "0"/],
    [['feed', '--channels', 'two'], /--channels "two"/],
    [['feed', '--format', 'bogus'], /--format "bogus" is unknown/],
    [[''], /feed id "" is not a folder name/],
    [['a/b'], /feed id "a\/b" is not a folder name/],
    [['feed', '--out', 'missing/dir/x.wav'], /folder missing\/dir does not exist/],
    [['feed', '--out', 'taken.wav'], /taken\.wav exists and is never overwritten/],
    [['feed', '--video', 'feed/01ARYZ6S41TSV4RRFFQ69G5FAV.mp4'], /does not exist/],
    [['feed', '--video', 'feed/clip.avi'], /is not an \.mp4/],
    [['feed', '--video', 'feed/clip.mp4'], /is not named <ULID>\.mp4/],
    [['mux'], /mux takes one file: record-audio mux <sync\.json>/],
    [['repair'], /repair takes one file/],
    [['feed', '--no-sync-out'], /--no-sync-out is not a flag/],
    [['feed', '--no-device'], /--no-device is not a flag/],
  ]
  const before = listing(cwd)
  for (const [args, pattern] of cases) {
    const result = run(process.execPath, [TOOL, ...args], { cwd, env: pulse.env, timeout: 10000 })
    assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`)
    assert.match(result.stderr, pattern, args.join(' '))
    assert.equal(result.stderr.trim().split('\n').length, 1, `one line: ${result.stderr}`)
    assert.deepEqual(listing(cwd), before, `${args.join(' ')} changed nothing`)
    assert.equal(fs.readFileSync(path.join(cwd, 'taken.wav'), 'utf8'), 'earlier')
  }
})

test('hostile names (spaces, quotes, $, backticks, a newline, non-ASCII): the printed command, pasted into bash, sh and zsh, makes the muxed file', async () => {
  const feed = `it's a "$HOME" \`date\` trial\nü🐟`
  const s = await recordThenStop(pulse, (tool) => tool.ctrlC(), { feed, recordS: 1.5 })
  assertCompleteStop(s)
  for (const shell of ['bash', 'sh', 'zsh']) {
    requireBinary(shell)
    fs.rmSync(s.sync.muxedFile, { force: true })
    const pasted = run(shell, ['-c', s.result.stdout], { cwd: tempDir() })
    assert.equal(pasted.status, 0, `${shell}: ${pasted.stderr}`)
    assert.equal(ffprobeStreams(s.sync.muxedFile).length, 2, shell)
  }
  assert.ok(s.sync.muxedFile.startsWith(path.join(s.cwd, feed)), s.sync.muxedFile)
})

test('a read-only folder is a file error, not a device error: named, exit non-zero, nothing left behind, no ffmpeg', async () => {
  const cwd = tempDir()
  const ro = path.join(cwd, 'ro')
  fs.mkdirSync(ro)
  const mounted = run('mount', ['-t', 'tmpfs', '-o', 'ro,size=64k', 'ra-ro', ro])
  assert.equal(mounted.status, 0, `mounting a read-only tmpfs needs root (CI runs as root): ${mounted.stderr}`)
  try {
    const here = run(process.execPath, [TOOL, 'feed', '--format', 'pulse', '--device', pulse.source], {
      cwd: ro,
      env: pulse.env,
      timeout: 10000,
    })
    assert.equal(here.status, 2, here.stderr)
    assert.match(here.stderr, /cannot create feed-audio-sync\.json \(EROFS\): record into a folder you can write to/)
    assert.doesNotMatch(here.stderr, /device/)
    const wavOnly = run(
      process.execPath,
      [TOOL, 'feed', '--format', 'pulse', '--device', pulse.source, '--out', 'ro/x.wav', '--sync-out', 's.json'],
      { cwd, env: pulse.env, timeout: 10000 },
    )
    // The WAV's name is reserved before ffmpeg opens it: refused there, before recording.
    assert.equal(wavOnly.status, 2, wavOnly.stderr)
    assert.match(wavOnly.stderr, /cannot create ro\/x\.wav \(EROFS\): record into a folder you can write to/)
    assert.doesNotMatch(wavOnly.stderr, /could not record from/)
    assert.deepEqual(listing(cwd), ['ro'], 'the sync file it reserved is gone with the recording that never was')
    assert.deepEqual(ffmpegPidsIn(cwd), [])
  } finally {
    run('umount', [ro])
  }
})

test('names ffmpeg would misread (a feed id cam:1, --out=-x.wav): recorded to exactly those files', async () => {
  const cwd = tempDir()
  for (const args of [['cam:1'], ['feed', '--out=-x.wav']]) {
    const tool = startTool([...args, '--format', 'pulse', '--device', pulse.source], { cwd, env: pulse.env })
    const wavPath = path.join(cwd, args[0] === 'cam:1' ? 'cam:1-audio.wav' : '-x.wav')
    await tool.recording(wavPath)
    await sleep(800)
    tool.ctrlC()
    const result = await tool.exited
    assert.equal(result.code, 0, result.stderr)
    const wav = readWav(wavPath)
    assert.equal(wav.dataOffset + wav.dataSize, wav.fileBytes)
    assert.ok(wav.samples > 0.5 * 48000)
  }
  assert.deepEqual(listing(cwd), ['-x-sync.json', '-x.wav', 'cam:1-audio-sync.json', 'cam:1-audio.wav'])
})

test('two runs started in the same moment with the same default name: each gets its own WAV and sync file', async () => {
  const cwd = tempDir()
  const tools = [0, 1].map(() =>
    startTool(['same', '--format', 'pulse', '--device', pulse.source], { cwd, env: pulse.env }),
  )
  await waitFor(
    () => ['same-audio.wav', 'same-audio-2.wav'].every((f) => fileBytes(path.join(cwd, f)) > 0), // past the reservation
    10000,
    'both recordings',
  )
  await sleep(800)
  for (const tool of tools) tool.ctrlC()
  const results = await Promise.all(tools.map((tool) => tool.exited))
  for (const result of results) assert.equal(result.code, 0, result.stderr)
  const named = results.map((r) => /^[✔ ] Audio: (\S+)/m.exec(r.stderr)?.[1]).sort()
  assert.deepEqual(named, ['same-audio-2.wav', 'same-audio.wav'])
  for (const wav of named) {
    const sync = JSON.parse(fs.readFileSync(path.join(cwd, wav.replace('.wav', '-sync.json')), 'utf8'))
    assert.equal(sync.audioFile, path.join(cwd, wav))
    assert.equal(readWav(path.join(cwd, wav)).riffSize, fs.statSync(path.join(cwd, wav)).size - 8)
  }
})

test('a folder named like a recording (<ULID>.mp4) in the feed: ignored, no stack trace, the sync file written, exit 0', async () => {
  const cwd = tempDir()
  fs.mkdirSync(path.join(cwd, 'feed', `${ulidAt(Date.now() + 60000)}.mp4`), { recursive: true })
  const s = await recordThenStop(pulse, (tool) => tool.ctrlC(), { feed: 'feed', recordS: 1, cwd })
  assert.equal(s.result.code, 0, s.result.stderr)
  assert.doesNotMatch(s.result.stderr, /\n\s+at /, 'no stack trace')
  assert.equal(typeof s.sync.audioStartEpochS, 'number')
})
