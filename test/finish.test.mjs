// Finishing the job for the user: --mux, --json, --list-devices, high sample rates; real ffmpeg
// and a real PulseAudio server.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  startPulse,
  usePulse,
  startVideoRecorder,
  startTool,
  tempDir,
  ffprobeStreams,
  run,
  TOOL,
  requireBinary,
  waitFor,
  ulidAt,
  expectedAudioMark,
} from './helpers.mjs'

const pulse = usePulse()

const sha = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex')

test('--mux with the video still being written: waits for it, muxes, checks, prints the path, leaves no temporary file, exit 0', async () => {
  const cwd = tempDir()
  const video = startVideoRecorder(path.join(cwd, 'feed'))
  await sleep(300)
  const wav = path.join(cwd, 'feed-audio.wav')
  const tool = startTool(['feed', '--format', 'pulse', '--device', pulse.source, '--mux', '--wait', '30'], {
    cwd,
    env: pulse.env,
  })
  await tool.recording(wav)
  await sleep(1500)
  tool.ctrlC() // the recorder is still writing: --mux waits for it
  await sleep(1500)
  assert.equal(tool.child.exitCode, null, 'still waiting for the video')
  await video.stop()
  const result = await tool.exited
  assert.equal(result.code, 0, result.stderr)
  assert.match(result.stderr, /Waiting up to 30 s for TracktorLive to finish/)
  const sync = JSON.parse(fs.readFileSync(path.join(cwd, 'feed-audio-sync.json'), 'utf8'))
  assert.equal(sync.videoFinalized, true)
  const shown = path.relative(cwd, sync.muxedFile) // below where the user stands: relative
  assert.match(result.stderr, new RegExp(`✔ Muxed: ${shown.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`))
  const streams = ffprobeStreams(sync.muxedFile)
  const original = ffprobeStreams(video.file)[0]
  assert.equal(streams.find((s) => s.codec_type === 'video').nb_frames, original.nb_frames)
  assert.ok(streams.some((s) => s.codec_type === 'audio'))
  assert.equal(
    ffprobeStreams(video.file).length,
    1,
    'the original video keeps its one stream (its bytes: see the failing-mux test)',
  )
  assert.deepEqual(
    fs.readdirSync(path.join(cwd, 'feed')).filter((f) => f.includes('.partial')),
    [],
  )
})

test('mux later with --mux, failing (the target disk fills up): no partial file left, originals untouched, exit 1', async () => {
  const cwd = tempDir()
  const video = startVideoRecorder(path.join(cwd, 'feed'))
  await sleep(300)
  const tool = startTool(['feed', '--format', 'pulse', '--device', pulse.source], { cwd, env: pulse.env })
  await tool.recording(path.join(cwd, 'feed-audio.wav'))
  await sleep(2000)
  await video.stop()
  tool.ctrlC()
  assert.equal((await tool.exited).code, 0)
  const full = path.join(cwd, 'full')
  fs.mkdirSync(full)
  const mounted = run('mount', ['-t', 'tmpfs', '-o', 'size=8k', 'ra-full', full])
  assert.equal(mounted.status, 0, `mounting a small tmpfs needs root (CI runs as root): ${mounted.stderr}`)
  try {
    const before = [sha(video.file), sha(path.join(cwd, 'feed-audio.wav'))]
    const result = run(
      process.execPath,
      [TOOL, 'mux', 'feed-audio-sync.json', '--mux', '--muxed-out', path.join(full, 'out.mp4')],
      { cwd, env: pulse.env, timeout: 60000 },
    )
    assert.equal(result.status, 1, result.stderr)
    assert.match(result.stderr, /✖ Mux failed: .+\. Nothing was written; the recording and the video are untouched\./)
    assert.deepEqual(fs.readdirSync(full), [])
    assert.deepEqual([sha(video.file), sha(path.join(cwd, 'feed-audio.wav'))], before)
  } finally {
    run('umount', [full])
  }
})

test('--json: the sync record on stdout, parseable, human lines on stderr; --plot: the offset drawn where it belongs', async () => {
  const cwd = tempDir()
  const video = startVideoRecorder(path.join(cwd, 'feed'))
  await sleep(300)
  const tool = startTool(['feed', '--format', 'pulse', '--device', pulse.source, '--json', '--plot', 'timeline.png'], {
    cwd,
    env: pulse.env,
  })
  await tool.recording(path.join(cwd, 'feed-audio.wav'))
  await sleep(1000)
  await video.stop()
  tool.ctrlC()
  const result = await tool.exited
  assert.equal(result.code, 0, result.stderr)
  const record = JSON.parse(result.stdout)
  assert.deepEqual(record, JSON.parse(fs.readFileSync(path.join(cwd, 'feed-audio-sync.json'), 'utf8')))
  assert.equal(record.videoFile, video.file)
  // A ✔ only when the device's stamp and the samples' arrival agree (the first sample's second witness).
  const mark = expectedAudioMark(record)
  assert.match(result.stderr, new RegExp(`^${mark} Audio: feed-audio\\.wav`, 'm'))

  // --plot: the red line (first frame) and the green one (first sample) where the offset puts them.
  const { plotArgs, PLOT_WIDTH, PLOT_HEIGHT } = await import('../dist/record-audio.mjs')
  assert.match(result.stderr, /✔ Plot: timeline\.png/)
  const { videoX, audioX } = plotArgs({
    audioFile: '',
    plotFile: '',
    audioStartEpochS: record.audioStartEpochS,
    audioDurationS: record.audioDurationS,
    videoStartEpochS: record.videoStartEpochS,
    videoDurationS: record.videoDurationS,
  })
  assert.ok(audioX - videoX > 5, 'the audio started visibly later')
  const rgb = run(
    'ffmpeg',
    ['-v', 'error', '-i', path.join(cwd, 'timeline.png'), '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'],
    { encoding: 'buffer' },
  ).stdout
  assert.equal(rgb.length, PLOT_WIDTH * PLOT_HEIGHT * 3)
  const pixel = (x, y) => [...rgb.subarray((y * PLOT_WIDTH + x) * 3, (y * PLOT_WIDTH + x) * 3 + 3)]
  const near = (got, want) => got.every((v, i) => Math.abs(v - want[i]) < 40)
  assert.ok(near(pixel(videoX, 5), [0xd6, 0x27, 0x28]), `red at x=${videoX}: ${pixel(videoX, 5)}`)
  assert.ok(near(pixel(audioX, 5), [0x2c, 0xa0, 0x2c]), `green at x=${audioX}: ${pixel(audioX, 5)}`)
  assert.ok(near(pixel(Math.round((videoX + audioX) / 2), 5), [255, 255, 255]), 'white between them')
})

test('--list-devices: the PulseAudio sources, the null sink monitor among them, exit 0', () => {
  const result = run(process.execPath, [TOOL, '--list-devices', '--format', 'pulse'], { env: pulse.env })
  assert.equal(result.status, 0, result.stderr)
  assert.match(result.stdout, /^[* ] ra_sink\.monitor {2}Monitor of/m)
  assert.match(result.stderr, /\* is the default/)
})

test('192 kHz (ultrasonic): recorded at that rate, muxed by --mux into .mkv with FLAC, every sample kept, never resampled', async () => {
  const cwd = tempDir()
  const video = startVideoRecorder(path.join(cwd, 'bats'))
  await sleep(300)
  const tool = startTool(['bats', '--format', 'pulse', '--device', pulse.source, '--rate', '192000', '--mux'], {
    cwd,
    env: pulse.env,
  })
  await tool.recording(path.join(cwd, 'bats-audio.wav'))
  await sleep(1500)
  await video.stop()
  tool.ctrlC()
  const result = await tool.exited
  assert.equal(result.code, 0, result.stderr)
  assert.match(result.stderr, /192000 Hz is past AAC's 96 kHz: the muxed file is Matroska \(\.mkv\) with FLAC audio/)
  const sync = JSON.parse(fs.readFileSync(path.join(cwd, 'bats-audio-sync.json'), 'utf8'))
  assert.match(sync.muxedFile, /-with-audio\.mkv$/)
  const audio = ffprobeStreams(sync.muxedFile).find((s) => s.codec_type === 'audio')
  assert.equal(audio.codec_name, 'flac')
  assert.equal(audio.sample_rate, '192000')
})

test('a silent input (muted microphone): after 5 s a plain warning line when piped, the recording goes on, exit 0', async () => {
  const quiet = await startPulse({ tone: false })
  try {
    const cwd = tempDir()
    const tool = startTool(['feed', '--format', 'pulse', '--device', quiet.source], { cwd, env: quiet.env })
    await tool.recording(path.join(cwd, 'feed-audio.wav'))
    await sleep(6500)
    assert.match(
      tool.stderr,
      /⚠ The input has been silent \(below -80 dBFS\) for 5 s: is the microphone muted, or the wrong one\?/,
    )
    assert.ok(!tool.stderr.includes('\x1b'), 'no color when piped')
    tool.ctrlC()
    assert.equal((await tool.exited).code, 0)
  } finally {
    await quiet.stop()
  }
})

test('live status on a terminal (tmux): elapsed time, WAV size and level redrawn in place; NO_COLOR leaves out the colors', async () => {
  requireBinary('tmux')
  for (const noColor of [false, true]) {
    const cwd = tempDir()
    const socket = path.join(cwd, '.tmux')
    const env = { ...pulse.env, TMUX: '' }
    delete env.NO_COLOR
    const tmux = (...args) => run('tmux', ['-S', socket, ...args], { env })
    const command = `cd ${JSON.stringify(cwd)} && ${noColor ? 'NO_COLOR=1 ' : ''}${JSON.stringify(process.execPath)} ${JSON.stringify(TOOL)} feed --format pulse --device ${pulse.source}; sleep 30`
    assert.equal(tmux('new-session', '-d', '-s', 'ra', '-x', '160', '-y', '20', command).status, 0)
    try {
      await sleep(3500)
      // A line said (here: no feed/ folder yet, a few seconds in) clears the status until the next tick redraws it.
      const status = /● 00:00:0\d {2}\d+\.\d MB +-\d+\.\d dBFS ▮+/
      // biome-ignore lint/suspicious/noControlCharactersInRegex: the escape sequences a terminal gets are what is tested
      const plain = (text) => text.replace(/\x1b\[[0-9;]*m/g, '')
      const capture = () => tmux('capture-pane', '-p', '-e', '-t', 'ra').stdout
      await waitFor(() => status.test(plain(capture())), 3000, 'the status line').catch(() => {})
      const screen = capture()
      assert.match(plain(screen), status, screen)
      assert.equal(screen.includes('\x1b[31m'), !noColor, `colors ${noColor ? 'off' : 'on'}: ${JSON.stringify(screen)}`)
      tmux('send-keys', '-t', 'ra', 'C-c')
      await waitFor(() => fs.existsSync(path.join(cwd, 'feed-audio-sync.json')), 5000, 'the stop')
    } finally {
      tmux('kill-server')
    }
  }
})

test('no feed id: the recording that overlaps the audio most is picked, the others listed, an old one ignored; audio named by its start', async () => {
  const cwd = tempDir()
  const old = startVideoRecorder(path.join(cwd, 'old trial'))
  await sleep(500)
  await old.stop()
  const anHourAgo = new Date(Date.now() - 3600e3)
  fs.utimesSync(old.file, anHourAgo, anHourAgo)
  const camA = startVideoRecorder(path.join(cwd, 'cam A'))
  const camB = startVideoRecorder(path.join(cwd, 'cam B'))
  await sleep(300)
  const tool = startTool(['--format', 'pulse', '--device', pulse.source], { cwd, env: pulse.env })
  // Past the empty reservation of the name: ffmpeg has written the header.
  const started = (f) => /^audio-\d{8}T\d{6}Z\.wav$/.test(f) && fs.statSync(path.join(cwd, f)).size > 0
  await waitFor(() => fs.readdirSync(cwd).some(started), 10000, 'audio-<start>.wav')
  await sleep(1000)
  await camB.stop() // B covers only the first part of the audio
  await sleep(1500)
  await camA.stop()
  tool.ctrlC()
  const result = await tool.exited
  assert.equal(result.code, 0, result.stderr)
  assert.match(
    result.stderr,
    new RegExp(
      `No feed id: picked cam A/${path.basename(camA.file).slice(0, 4)}…${path.basename(camA.file).slice(24)}, which covers \\d+\\.\\d s of the audio, the most of 2 overlapping recordings:`,
    ),
  )
  assert.match(result.stderr, new RegExp(`→ cam A/${path.basename(camA.file)}`))
  assert.match(result.stderr, new RegExp(`  cam B/${path.basename(camB.file)}`))
  assert.ok(!result.stderr.includes('old trial'), 'the old recording does not overlap')
  const syncName = fs.readdirSync(cwd).find((f) => f.endsWith('-sync.json'))
  const sync = JSON.parse(fs.readFileSync(path.join(cwd, syncName), 'utf8'))
  assert.equal(sync.videoFile, camA.file)
  assert.equal(sync.feedDir, null)
  const mux = run('bash', ['-c', sync.muxCommand])
  assert.equal(mux.status, 0, mux.stderr)
})

test('SIGTERM during the mux: ffmpeg stopped, the partial file removed, nothing muxed, originals untouched, exit 1', async () => {
  const cwd = tempDir()
  const ulidMs = Date.now() - 700000
  const videoFile = path.join(cwd, 'feed', `${ulidAt(ulidMs)}.mp4`)
  fs.mkdirSync(path.dirname(videoFile))
  // Ten minutes of both, so that the mux lasts long enough to be caught in the act.
  const made = [
    run(
      'ffmpeg',
      ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc=size=32x24:rate=30', '-t', '600'].concat([
        '-c:v',
        'mpeg4',
        '-tag:v',
        'mp4v',
        videoFile,
      ]),
    ),
    run('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'sine=r=48000', '-t', '600', path.join(cwd, 'a.wav')]),
  ]
  for (const m of made) assert.equal(m.status, 0, m.stderr)
  fs.writeFileSync(
    path.join(cwd, 'a-sync.json'),
    JSON.stringify({
      audioFile: path.join(cwd, 'a.wav'),
      audioStartEpochS: ulidMs / 1000 + 0.1,
      audioSampleRate: 48000,
    }),
  )
  const before = [sha(videoFile), sha(path.join(cwd, 'a.wav'))]
  const tool = startTool(['mux', 'a-sync.json', '--video', videoFile], { cwd, env: pulse.env })
  const partial = () => fs.readdirSync(path.dirname(videoFile)).find((f) => f.includes('.partial-'))
  await waitFor(() => partial() || tool.child.exitCode !== null, 30000, 'the mux to start writing')
  assert.ok(partial(), `the mux was still running: ${tool.stderr}`)
  process.kill(tool.child.pid, 'SIGTERM')
  const result = await tool.exited
  assert.equal(result.code, 1, result.stderr)
  assert.match(result.stderr, /✖ Mux failed: stopped\. Nothing was written/)
  assert.deepEqual(fs.readdirSync(path.dirname(videoFile)), [path.basename(videoFile)])
  assert.deepEqual([sha(videoFile), sha(path.join(cwd, 'a.wav'))], before)
})

test("ffmpeg logs a flood (-debug_ts, trace): the first sample's time is read when it appears, not lost from the log's tail", async () => {
  const cwd = tempDir()
  const noisy = path.join(cwd, 'noisy-ffmpeg')
  fs.writeFileSync(noisy, `#!/bin/sh\nexec ffmpeg -debug_ts -loglevel trace "$@"\n`, { mode: 0o755 })
  const tool = startTool(['feed', '--format', 'pulse', '--device', pulse.source, '--ffmpeg', noisy], {
    cwd,
    env: pulse.env,
  })
  await tool.recording(path.join(cwd, 'feed-audio.wav'))
  await sleep(5000) // over 64 KiB of log: the start line is long gone from a 64 KiB tail
  tool.ctrlC()
  const result = await tool.exited
  assert.equal(result.code, 0, result.stderr)
  const sync = JSON.parse(fs.readFileSync(path.join(cwd, 'feed-audio-sync.json'), 'utf8'))
  assert.equal(typeof sync.audioStartStampEpochS, 'number', result.stderr.slice(0, 2000)) // ffmpeg printed its stamp
  assert.doesNotMatch(result.stderr, /printed no start time/)
})
