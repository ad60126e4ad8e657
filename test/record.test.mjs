// End to end, with the real ffmpeg and a real PulseAudio server: record, ctrl-c, mux, check.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  firstSound,
  SOUND_SERVERS,
  useSoundServer,
  startVideoRecorder,
  startTool,
  tempDir,
  readWav,
  ffprobeStreams,
  decodeAudio,
  run,
  ffmpegPidsIn,
  expectedPlusMinus,
} from './helpers.mjs'

// The first two tests run on each sound server (PulseAudio, and PipeWire through pipewire-pulse); the rest on PulseAudio.
const servers = Object.fromEntries(SOUND_SERVERS.map((name) => [name, useSoundServer(name)]))
const pulse = servers.pulse
const SERVER_NAMES = { pulse: 'PulseAudio', pipewire: 'PipeWire (pipewire-pulse)' }

/** The common session: TracktorLive writing, record-audio beside it, ctrl-c, then the recorder stops. */
async function session({ feed = 'trial 1', args = [], recordS = 3, stopVideoFirst = true, server = pulse } = {}) {
  const cwd = tempDir()
  const video = startVideoRecorder(path.join(cwd, feed))
  await sleep(300)
  const wav = path.join(cwd, `${feed}-audio.wav`)
  const tool = startTool([feed, '--format', 'pulse', '--device', server.source, ...args], { cwd, env: server.env })
  await tool.recording(wav)
  const recordingFromMs = Date.now()
  await sleep(recordS * 1000)
  if (stopVideoFirst) await video.stop()
  const stopAtMs = Date.now()
  tool.ctrlC()
  const result = await tool.exited
  if (!stopVideoFirst) await video.stop()
  return {
    cwd,
    video,
    wav,
    result,
    recordingFromMs,
    stopAtMs,
    sync: readSync(path.join(cwd, `${feed}-audio-sync.json`)),
  }
}

function readSync(file) {
  return fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : null
}

for (const name of SOUND_SERVERS) {
  test(`pulse on ${SERVER_NAMES[name]}: ctrl-c leaves a finalized WAV as long as the recording, a sync file, and a command that muxes in sync`, async () => {
    const s = await session({ server: servers[name] })
    assert.equal(s.result.code, 0, s.result.stderr)

    const wav = readWav(s.wav)
    assert.equal(wav.riff, 'RIFF')
    assert.equal(wav.riffSize, wav.fileBytes - 8, 'RIFF size finalized')
    assert.equal(wav.dataOffset + wav.dataSize, wav.fileBytes, 'data size finalized')
    assert.equal(wav.sampleRate, 48000)
    assert.equal(wav.channels, 1)
    const wavS = wav.samples / wav.sampleRate
    const wallS = (s.stopAtMs - s.sync.audioStartEpochS * 1000) / 1000
    // Every sample up to the ctrl-c, and no more than ffmpeg reads before it takes the q (≤ 0.1 s) and the stop's polling;
    // pipewire-pulse hands ffmpeg 50 ms fragments (the WAV grows 2400 samples at a time, measured): 0.1 s more there.
    const slackS = name === 'pipewire' ? 0.1 : 0
    assert.ok(
      wavS > wallS - 0.02 && wavS < wallS + 0.3 + slackS,
      `WAV holds ${wavS.toFixed(3)} s for ${wallS.toFixed(3)} s of wall time`,
    )
    assert.equal(s.sync.audioStartDoubtful, false)

    assert.match(s.sync.audioStartSource, /^(ffmpeg-input-start|arrival-envelope)$/) // the stamp, or the arrival where it is later
    assert.equal(typeof s.sync.audioStartStampEpochS, 'number')
    assert.equal(s.sync.videoFile, s.video.file)
    assert.equal(s.sync.videoStartEpochS * 1000, s.video.ulidEpochMs)
    assert.equal(s.sync.videoStartSource, 'ulid')
    assert.equal(s.sync.videoFinalized, true)
    assert.ok(Math.abs(s.sync.offsetS - (s.sync.audioStartEpochS - s.sync.videoStartEpochS)) < 1e-9)
    assert.ok(s.sync.offsetS > 0, 'the tool started after the video, so the audio starts late')
    assert.deepEqual(s.result.stdout.trim(), s.sync.muxCommand)
    // The video's line: where the audio starts against the video (after it: silence first), its anchor.
    // Its ± the bounds: the camera's latency unmeasured only widens them on one side.
    assert.equal(s.sync.cameraLatencySource, 'unmeasured')
    const starts = `audio starts ${s.sync.offsetS.toFixed(3)} s ${expectedPlusMinus(s.sync)} after the video (ULID)`
    assert.ok(s.result.stderr.includes(starts), s.result.stderr)
    assert.ok(
      s.sync.notes.some((n) => n.text.includes("after the video's first frame")),
      JSON.stringify(s.sync.notes),
    )

    // The printed command, pasted into bash as it is.
    const mux = run('bash', ['-c', s.sync.muxCommand], { cwd: tempDir() })
    assert.equal(mux.status, 0, mux.stderr)
    const streams = ffprobeStreams(s.sync.muxedFile)
    const v = streams.find((x) => x.codec_type === 'video')
    const a = streams.find((x) => x.codec_type === 'audio')
    assert.equal(v.codec_name, 'mpeg4', 'video copied, not re-encoded')
    assert.equal(a.codec_name, 'aac')
    const original = ffprobeStreams(s.video.file).find((x) => x.codec_type === 'video')
    assert.equal(v.nb_frames, original.nb_frames)
    assert.ok(Math.abs(+a.duration - +v.duration) <= 1024 / 48000, `audio ${a.duration} s vs video ${v.duration} s`)

    // The tone is continuous: the muxed audio's first sound comes exactly the delay after the WAV's
    // (a null sink's monitor opens with some silence of its own, hence the WAV as the reference).
    // (firstSound: past half the tone's height. AAC's pre-echo before a hard onset crossed a fixed
    // threshold of 300 up to 91 samples early; it never reaches half the height.)
    const inWav = firstSound(decodeAudio(s.wav))
    const inMuxed = firstSound(decodeAudio(s.sync.muxedFile))
    const delaySamples = Math.round(s.sync.offsetS * 48000)
    assert.equal(s.sync.delaySamples, delaySamples)
    assert.ok(
      inWav >= 0 && Math.abs(inMuxed - inWav - delaySamples) <= 48,
      `sound at sample ${inWav} of the WAV, ${inMuxed} of the muxed file; delay ${delaySamples}`,
    )
  })

  test(`alsa default routed to ${SERVER_NAMES[name]} (the default Linux path): records and syncs`, async () => {
    const server = servers[name]
    const cwd = tempDir()
    const feed = 'alsa-feed'
    const video = startVideoRecorder(path.join(cwd, feed))
    await sleep(300)
    const wavPath = path.join(cwd, `${feed}-audio.wav`)
    const tool = startTool([feed], { cwd, env: server.env }) // no --format, no --device: alsa "default"
    await tool.recording(wavPath)
    await sleep(2000)
    await video.stop()
    tool.ctrlC()
    const result = await tool.exited
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stderr, /Recording alsa device "default"/)
    const sync = readSync(path.join(cwd, `${feed}-audio-sync.json`))
    assert.match(sync.audioStartSource, /^(ffmpeg-input-start|arrival-envelope)$/) // the stamp, or the arrival where it is later
    assert.equal(typeof sync.audioStartStampEpochS, 'number')
    const wav = readWav(wavPath)
    assert.equal(wav.dataOffset + wav.dataSize, wav.fileBytes)
    assert.ok(wav.samples > 1.5 * 48000, `${wav.samples} samples`)
    const mux = run('sh', ['-c', sync.muxCommand])
    assert.equal(mux.status, 0, mux.stderr)
    assert.equal(ffprobeStreams(sync.muxedFile).length, 2)
  })
}

test('audio stopped while the video is still being written: warns, and the command works once the recorder stops', async () => {
  const s = await session({ feed: 'still writing', recordS: 2, stopVideoFirst: false })
  assert.equal(s.result.code, 0, s.result.stderr)
  assert.equal(s.sync.videoFinalized, false)
  assert.match(s.result.stderr, /not finalized yet/)
  const mux = run('bash', ['-c', s.sync.muxCommand])
  assert.equal(mux.status, 0, mux.stderr)
  assert.equal(ffprobeStreams(s.sync.muxedFile).length, 2)
})

test('no recording in the feed folder (only decoys): keeps the WAV, says so, exits 0', async () => {
  const cwd = tempDir()
  fs.mkdirSync(path.join(cwd, 'decoys'))
  fs.writeFileSync(path.join(cwd, 'decoys', 'timelapse.mp4'), 'not a recording')
  const wavPath = path.join(cwd, 'decoys-audio.wav')
  const tool = startTool(['decoys', '--format', 'pulse', '--device', pulse.source], { cwd, env: pulse.env })
  await tool.recording(wavPath)
  await sleep(1000)
  tool.ctrlC()
  const result = await tool.exited
  assert.equal(result.code, 0, result.stderr)
  assert.match(result.stderr, /No TracktorLive recording/)
  assert.ok(readWav(wavPath).samples > 0.5 * 48000)
  const sync = readSync(path.join(cwd, 'decoys-audio-sync.json'))
  assert.equal(sync.videoFile, null)
  assert.equal(typeof sync.audioStartEpochS, 'number')
})

test('a device that cannot be opened: one error naming it and how to list devices, exit 1, nothing written, no ffmpeg left', async () => {
  const cwd = tempDir()
  const tool = startTool(['feed', '--format', 'pulse', '--device', 'no_such_source'], { cwd, env: pulse.env })
  const result = await tool.exited
  assert.equal(result.code, 1)
  assert.match(result.stderr, /could not record from pulse device "no_such_source"/)
  assert.match(result.stderr, /List the devices with: record-audio --list-devices --format pulse/)
  assert.deepEqual(fs.readdirSync(cwd), [])
  assert.deepEqual(ffmpegPidsIn(cwd), [])
})

test('an existing WAV is never overwritten: --out to it exits 2 and leaves it byte for byte', async () => {
  const cwd = tempDir()
  const wav = path.join(cwd, 'keep.wav')
  fs.writeFileSync(wav, 'an earlier recording')
  const tool = startTool(['feed', '--format', 'pulse', '--device', pulse.source, '--out', wav], { cwd, env: pulse.env })
  const result = await tool.exited
  assert.equal(result.code, 2)
  assert.match(result.stderr, /keep\.wav exists and is never overwritten/)
  assert.equal(fs.readFileSync(wav, 'utf8'), 'an earlier recording')
})

test('the default WAV name is taken: records to <feed>-audio-2.wav and says so', async () => {
  const cwd = tempDir()
  fs.writeFileSync(path.join(cwd, 'feed-audio.wav'), 'an earlier recording')
  const tool = startTool(['feed', '--format', 'pulse', '--device', pulse.source], { cwd, env: pulse.env })
  await tool.recording(path.join(cwd, 'feed-audio-2.wav'))
  await sleep(500)
  tool.ctrlC()
  const result = await tool.exited
  assert.equal(result.code, 0, result.stderr)
  assert.match(result.stderr, /feed-audio-2\.wav/)
  assert.equal(fs.readFileSync(path.join(cwd, 'feed-audio.wav'), 'utf8'), 'an earlier recording')
  assert.ok(fs.existsSync(path.join(cwd, 'feed-audio-2-sync.json')))
})

test('ffmpeg not found: names the path tried and how to install it, exit 1, nothing written', async () => {
  const cwd = tempDir()
  const tool = startTool(['feed', '--ffmpeg', '/nonexistent/ffmpeg'], { cwd, env: pulse.env })
  const result = await tool.exited
  assert.equal(result.code, 1)
  assert.match(
    result.stderr,
    /ffmpeg not found \(tried "\/nonexistent\/ffmpeg"\): install it with .*apt-get install ffmpeg/,
  )
  assert.equal(result.stderr.trim().split('\n').length, 1)
  assert.deepEqual(fs.readdirSync(cwd), [])
})

test('mux later: a recording made under the wrong feed id is synced afterwards with record-audio mux <sync.json> --video', async () => {
  const cwd = tempDir()
  const video = startVideoRecorder(path.join(cwd, 'right feed'))
  await sleep(300)
  const wavPath = path.join(cwd, 'wrong-audio.wav')
  const tool = startTool(['wrong', '--format', 'pulse', '--device', pulse.source], { cwd, env: pulse.env })
  await tool.recording(wavPath)
  await sleep(1500)
  await video.stop()
  tool.ctrlC()
  const first = await tool.exited
  assert.equal(first.code, 0, first.stderr)
  // The stop names the folder whose recording overlaps the audio, and the exact command that uses it.
  assert.match(first.stderr, /The recording that overlaps the audio .* is in right feed\/: sync to it with/)
  assert.ok(
    first.stderr.includes(`record-audio mux wrong-audio-sync.json --video 'right feed/${path.basename(video.file)}'`),
    first.stderr,
  )
  assert.equal(first.stdout, '')

  const syncBefore = fs.readFileSync(path.join(cwd, 'wrong-audio-sync.json'), 'utf8')
  const printed = await startTool(['mux', 'wrong-audio-sync.json', '--video', video.file, '--print'], {
    cwd,
    env: pulse.env,
  }).exited
  assert.equal(printed.code, 0, printed.stderr)
  const sync = JSON.parse(syncBefore)
  const expectedDelay = Math.round((sync.audioStartEpochS - video.ulidEpochMs / 1000) * 48000)
  assert.ok(printed.stdout.includes(`adelay=delays=${expectedDelay}S:all=1`), printed.stdout)
  assert.ok(!fs.existsSync(video.file.replace(/\.mp4$/, '-with-audio.mp4')), '--print only prints')

  // Without --print, mux muxes: the same wait, ffprobe check and no partial file as --mux.
  const muxed = await startTool(['mux', 'wrong-audio-sync.json', '--video', video.file], { cwd, env: pulse.env }).exited
  assert.equal(muxed.code, 0, muxed.stderr)
  assert.match(muxed.stderr, /✔ Muxed: .*-with-audio\.mp4/)
  assert.equal(muxed.stdout.trim(), printed.stdout.trim(), 'the command it ran is the one --print shows')
  assert.equal(ffprobeStreams(video.file.replace(/\.mp4$/, '-with-audio.mp4')).length, 2)
  assert.deepEqual(
    fs.readdirSync(path.dirname(video.file)).filter((f) => f.includes('.partial-')),
    [],
  )
  assert.equal(
    fs.readFileSync(path.join(cwd, 'wrong-audio-sync.json'), 'utf8'),
    syncBefore,
    'the sync file is only read',
  )

  const twice = run('bash', ['-c', printed.stdout.trim()])
  assert.notEqual(twice.status, 0, 'the printed command never overwrites the muxed file')
})

test("timesync file: the start is frame 0 on its rows' frame clock (a 0.5 s start hook after the ULID is no error), its rows give the real rate, drift corrected with -itsscale", async () => {
  const { parquetWriteFile } = await import('hyparquet-writer')
  const cwd = tempDir()
  const feed = 'tsync'
  const video = startVideoRecorder(path.join(cwd, feed))
  await sleep(300)
  const wavPath = path.join(cwd, `${feed}-audio.wav`)
  const tool = startTool([feed, '--format', 'pulse', '--device', pulse.source], { cwd, env: pulse.env })
  await tool.recording(wavPath)
  await sleep(3000) // 1 % of the video's length must be well over a frame
  await video.stop()
  // What TracktorLive's timesync cassette writes: one epoch time per frame (here 29.7 real fps,
  // against the video's nominal 30), the first frame 0.5 s after the ULID.
  const frames = Number(ffprobeStreams(video.file)[0].nb_frames)
  const firstFrameEpochS = video.ulidEpochMs / 1000 + 0.5
  const timestampUTC = Array.from({ length: frames - 1 }, (_, k) => firstFrameEpochS + k / 29.7)
  parquetWriteFile({
    filename: path.join(cwd, `${feed}-timesyncUTC.parquet`),
    columnData: [{ name: 'timestampUTC', data: timestampUTC, type: 'DOUBLE' }],
  })
  tool.ctrlC()
  const result = await tool.exited
  assert.equal(result.code, 0, result.stderr)
  const sync = JSON.parse(fs.readFileSync(path.join(cwd, `${feed}-audio-sync.json`), 'utf8'))
  assert.equal(sync.videoStartSource, 'timesync')
  // Rows on a straight line: their frame clock's frame 0 is the first row (to the float's rounding).
  assert.ok(Math.abs(sync.videoStartEpochS - firstFrameEpochS) < 1e-6, `${sync.videoStartEpochS - firstFrameEpochS} s`)
  assert.equal(sync.delaySamples, Math.round((sync.audioStartEpochS - sync.videoStartEpochS) * 48000))
  assert.ok(Math.abs(sync.itsscale - 30 / 29.7) < 1e-6, `itsscale ${sync.itsscale}: ${result.stderr}`)
  assert.ok(
    sync.notes.some((n) => /Drift: .* corrected with -itsscale 1\.0101/.test(n.text)),
    JSON.stringify(sync.notes),
  )
  // Said in full where the line has room, else in short (the sync file's notes say how).
  assert.match(result.stderr, /(video retimed [+]\d+ ppm to its real rate|; retimed [+]\d+ ppm)/)
  const mux = run('bash', ['-c', sync.muxCommand])
  assert.equal(mux.status, 0, mux.stderr)
  const streams = ffprobeStreams(sync.muxedFile)
  const v = streams.find((x) => x.codec_type === 'video')
  const a = streams.find((x) => x.codec_type === 'audio')
  assert.equal(Number(v.nb_frames), frames, 'every frame copied')
  assert.ok(
    Math.abs(Number(v.duration) - frames / 29.7) < 1 / 29.7,
    `video spans ${v.duration} s, real ${frames / 29.7} s`,
  )
  assert.ok(
    Math.abs(Number(a.duration) - Number(v.duration)) <= 1024 / 48000 + 1 / 29.7,
    `audio ${a.duration} s, video ${v.duration} s`,
  )
})
