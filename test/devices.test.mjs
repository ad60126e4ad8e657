// Several microphones at once (--device given once per device), on real PulseAudio null sinks: the
// test server's ra_sink (a 440 Hz tone) and a second null sink loaded for these tests.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  TOOL,
  decodeAudio,
  run,
  waitFor,
  ffmpegPidsIn,
  ffprobeStreams,
  readWav,
  firstSound,
  SOUND_SERVERS,
  useSoundServer,
  startTool,
  startVideoRecorder,
  tempDir,
} from './helpers.mjs'

// The first test runs on each sound server (PulseAudio, and PipeWire through pipewire-pulse); the rest on PulseAudio.
const servers = Object.fromEntries(SOUND_SERVERS.map((name) => [name, useSoundServer(name)]))
const pulse = servers.pulse
const SERVER_NAMES = { pulse: 'PulseAudio', pipewire: 'PipeWire (pipewire-pulse)' }

/** A second null sink on the test server: its monitor is a second, silent microphone. */
async function loadSink(name, server = pulse) {
  const load = spawnSync(
    'pactl',
    ['load-module', 'module-null-sink', `sink_name=${name}`, 'rate=48000', 'channels=1'],
    {
      env: server.env,
      encoding: 'utf8',
    },
  )
  assert.equal(load.status, 0, load.stderr)
  const moduleIndex = load.stdout.trim()
  // PipeWire makes the sink after pactl returns: wait until its monitor is listed.
  const listed = () => spawnSync('pactl', ['list', 'short', 'sources'], { env: server.env, encoding: 'utf8' }).stdout
  await waitFor(() => listed().includes(`${name}.monitor`), 10000, `${name}.monitor`)
  return {
    source: `${name}.monitor`,
    unload: () => spawnSync('pactl', ['unload-module', moduleIndex], { env: server.env }),
  }
}

for (const name of SOUND_SERVERS) {
  test(`${SERVER_NAMES[name]}, two devices, one ctrl-c: a WAV each at its own rate, each placed by its own first sample, one muxed file with a titled audio stream per device; the silent one is named`, async () => {
    const pulse = servers[name]
    const second = await loadSink('ra_second', pulse)
    try {
      const cwd = tempDir()
      const feed = 'arena'
      const video = startVideoRecorder(path.join(cwd, feed))
      await sleep(300)
      const args = [feed, '--format', 'pulse', '--device', pulse.source, '--device', second.source, '--mux']
      const tool = startTool([...args, '--rate', '48000', '--rate', '44100'], { cwd, env: pulse.env })
      await tool.recording(path.join(cwd, `${feed}-audio-2.wav`))
      await sleep(6500) // past the silence warning's 5 s, at the piped status's 2.5 s ticks
      // a device that opens at once (PipeWire) is 5 s silent only at the third tick, 7.5 s in
      await waitFor(() => tool.stderr.includes('has been silent'), 5000, 'the silence warning')
      tool.ctrlC()
      await sleep(500)
      await video.stop()
      const result = await tool.exited
      assert.equal(result.code, 0, result.stderr)
      assert.deepEqual(ffmpegPidsIn(cwd), [], 'no ffmpeg left')

      const sync = JSON.parse(fs.readFileSync(path.join(cwd, `${feed}-audio-sync.json`), 'utf8'))
      assert.deepEqual(
        sync.audios.map((a) => [path.basename(a.audioFile), a.audioDevice, a.audioSampleRate, a.audioFailed]),
        [
          [`${feed}-audio-1.wav`, pulse.source, 48000, null],
          [`${feed}-audio-2.wav`, second.source, 44100, null],
        ],
      )
      assert.equal(sync.audioFile, sync.audios[0].audioFile, 'the top-level audio is the first device')
      for (const [k, part] of sync.audios.entries()) {
        const wav = readWav(part.audioFile)
        assert.equal(wav.riffSize, wav.fileBytes - 8, `${part.audioFile}: finalized`)
        assert.equal(wav.sampleRate, part.audioSampleRate)
        // ffmpeg's stamp, or the samples' arrival where the stamp came after it (a null sink, by a few ms)
        assert.match(part.audioStartSource, /^(ffmpeg-input-start|arrival-envelope)$/)
        assert.equal(typeof part.audioStartStampEpochS, 'number')
        const placed = sync.audioPlacements[k]
        assert.equal(placed.audioFile, part.audioFile)
        assert.ok(Math.abs(placed.offsetS - (part.audioStartEpochS - sync.videoStartEpochS)) < 1e-9)
        assert.equal(placed.delaySamples - placed.trimSamples, Math.round(placed.offsetS * part.audioSampleRate))
      }
      assert.notEqual(sync.audios[0].audioStartEpochS, sync.audios[1].audioStartEpochS, 'two captures, two starts')
      assert.match(result.stderr, new RegExp(`Device "${second.source}" has been silent`))
      assert.doesNotMatch(result.stderr, new RegExp(`Device "${pulse.source}" has been silent`))

      const streams = ffprobeStreams(sync.muxedFile)
      const audio = streams.filter((x) => x.codec_type === 'audio')
      const v = streams.find((x) => x.codec_type === 'video')
      assert.equal(audio.length, 2)
      const names = spawnSync(
        'ffprobe',
        [
          '-v',
          'error',
          '-select_streams',
          'a',
          '-show_entries',
          'stream_tags=handler_name',
          '-of',
          'csv=p=0',
          sync.muxedFile,
        ],
        { encoding: 'utf8' },
      )
        .stdout.trim()
        .split('\n')
      assert.deepEqual(
        audio.map((a, k) => [Number(a.sample_rate), names[k]]),
        [
          [48000, pulse.source],
          [44100, second.source],
        ],
      )
      for (const a of audio)
        assert.ok(Math.abs(+a.duration - +v.duration) <= 1024 / 44100, `audio ${a.duration} s vs video ${v.duration} s`)
      // The first device's tone starts in the muxed file its delay after its start in the WAV.
      const inWav = firstSound(decodeAudio(sync.audios[0].audioFile))
      const inMuxed = firstSound(decodeAudio(sync.muxedFile))
      assert.ok(
        Math.abs(inMuxed - inWav - sync.audioPlacements[0].delaySamples) <= 48,
        `sound at ${inWav} of the WAV, ${inMuxed} of the muxed file; delay ${sync.audioPlacements[0].delaySamples}`,
      )
      // mux later makes the same file from the sync file: both devices, each at its place.
      const later = run(process.execPath, [TOOL, 'mux', path.join(cwd, `${feed}-audio-sync.json`), '--print'])
      assert.equal(later.status, 0, later.stderr)
      const [again] = later.stdout.trim().split('\n')
      assert.equal(again, result.stdout.trim().replace('-with-audio.mp4', '-with-audio-2.mp4'))
    } finally {
      second.unload()
    }
  })
}

test('two devices, the tool killed with SIGKILL: both ffmpegs stop once and finalize their WAVs', async () => {
  const second = await loadSink('ra_killed')
  try {
    const cwd = tempDir()
    const tool = startTool(['k', '--format', 'pulse', '--device', pulse.source, '--device', second.source], {
      cwd,
      env: pulse.env,
    })
    await tool.recording(path.join(cwd, 'k-audio-2.wav'))
    await sleep(1500)
    process.kill(tool.child.pid, 'SIGKILL')
    await tool.exited
    await waitFor(() => ffmpegPidsIn(cwd).length === 0, 5000, 'both ffmpegs to finish')
    for (const file of ['k-audio-1.wav', 'k-audio-2.wav']) {
      const wav = readWav(path.join(cwd, file))
      assert.equal(wav.riffSize, wav.fileBytes - 8, `${file}: RIFF size finalized`)
      assert.ok(wav.samples > 24000, `${file}: ${wav.samples} samples`)
    }
    const sync = JSON.parse(fs.readFileSync(path.join(cwd, 'k-audio-sync.json'), 'utf8'))
    assert.ok(
      sync.audios.every((a) => a.audioStartEpochS > 0),
      'each start saved the moment it was known',
    )
  } finally {
    second.unload()
  }
})

// (An unplugged PulseAudio source does not end its capture: PulseAudio moves the stream to another
// source, and ffmpeg records on from there. So the mid-way failure here is ffmpeg's own death.)
test("a device that fails alone is reported and the others keep recording: one never opens, one's ffmpeg dies mid-way (SIGKILL, standing in for a crash); exit 1, nothing lost", async () => {
  const second = await loadSink('ra_crashing')
  const cwd = tempDir()
  const tool = startTool(
    ['lab', '--format', 'pulse', '--device', pulse.source, '--device', second.source, '--device', 'no_such_source'],
    { cwd, env: pulse.env },
  )
  await tool.recording(path.join(cwd, 'lab-audio-2.wav'))
  await sleep(1500)
  const crashing = ffmpegPidsIn(cwd).filter((pid) =>
    fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('lab-audio-2.wav'),
  )
  assert.equal(crashing.length, 1)
  process.kill(crashing[0], 'SIGKILL') // the tool's own ffmpeg for the second device, found by its file
  await sleep(2000)
  assert.equal(tool.child.exitCode, null, 'still recording the first device')
  tool.ctrlC()
  const result = await tool.exited
  assert.equal(result.code, 1, result.stderr)
  assert.deepEqual(ffmpegPidsIn(cwd), [], 'no ffmpeg left')
  assert.match(result.stderr, /✖ ffmpeg could not record from pulse device "no_such_source"/)
  assert.match(
    result.stderr,
    /✖ device 2 \("ra_crashing\.monitor"\): ffmpeg was killed \(SIGKILL\)\. The audio recorded so far is kept/,
  )
  assert.match(result.stderr, /record-audio repair lab-audio-2\.wav/)
  const sync = JSON.parse(fs.readFileSync(path.join(cwd, 'lab-audio-sync.json'), 'utf8'))
  const [first, crashed, never] = sync.audios
  assert.equal(first.audioFailed, null)
  assert.ok(first.audioDurationS > 3, `the first device kept recording: ${first.audioDurationS} s`)
  assert.match(crashed.audioFailed, /ffmpeg was killed/)
  assert.ok(crashed.audioStartEpochS > 0, 'its start is kept')
  assert.ok(readWav(crashed.audioFile).fileBytes > 48000, 'its samples are kept')
  second.unload()
  assert.match(never.audioFailed, /^no sample recorded/)
  assert.equal(never.audioStartEpochS, null)
  assert.ok(!fs.existsSync(never.audioFile), 'no empty WAV for the device that never opened')
  const wav = readWav(first.audioFile)
  assert.equal(wav.riffSize, wav.fileBytes - 8)
})
