// --all-videos: one microphone left running across several TracktorLive trials, on a real PulseAudio
// null sink (a 440 Hz tone) with the stand-in video recorder writing real mp4 files.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  TOOL,
  decodeAudio,
  ffprobeStreams,
  run,
  firstSound,
  usePulse,
  startTool,
  startVideoRecorder,
  tempDir,
} from './helpers.mjs'

const pulse = usePulse()

test('--all-videos --mux: three trials in one recording, each with its own offset and checked muxed file; the uncovered parts are silence', async () => {
  const cwd = tempDir()
  const feed = 'day'
  const feedDir = path.join(cwd, feed)
  const earlier = startVideoRecorder(feedDir) // a trial before this recording: not one of its videos
  await sleep(1000)
  await earlier.stop()
  await sleep(1100)
  const first = startVideoRecorder(feedDir) // runs when the audio starts
  await sleep(500)
  const wav = path.join(cwd, `${feed}-audio.wav`)
  const tool = startTool([feed, '--format', 'pulse', '--device', pulse.source, '--all-videos', '--mux'], {
    cwd,
    env: pulse.env,
  })
  await tool.recording(wav)
  await sleep(1500)
  await first.stop()
  await sleep(500)
  const second = startVideoRecorder(feedDir) // inside the audio
  await sleep(1500)
  await second.stop()
  await sleep(500)
  const third = startVideoRecorder(feedDir) // still running at the ctrl-c: --mux waits for it
  await sleep(1000)
  tool.ctrlC()
  await sleep(1500)
  await third.stop()
  const result = await tool.exited
  assert.equal(result.code, 0, result.stderr)

  const sync = JSON.parse(fs.readFileSync(path.join(cwd, `${feed}-audio-sync.json`), 'utf8'))
  const trials = [first, second, third]
  assert.deepEqual(
    sync.videos.map((v) => v.videoFile),
    trials.map((t) => t.file),
    'every overlapping recording, oldest first, and not the one before the audio',
  )
  assert.equal(sync.videoFile, third.file, "the record's own fields are the newest video's")
  assert.equal(sync.timing.allVideos, true)
  const wavSamples = decodeAudio(wav)
  const audioS = wavSamples.length / 48000
  for (const [i, v] of sync.videos.entries()) {
    const trial = trials[i]
    assert.equal(v.videoStartSource, 'ulid')
    assert.ok(Math.abs(v.offsetS - (sync.audioStartEpochS - trial.ulidEpochMs / 1000)) < 1e-9)
    assert.equal(v.delaySamples - v.trimSamples, Math.round(v.offsetS * 48000))
    const streams = ffprobeStreams(v.muxedFile)
    const original = ffprobeStreams(trial.file).find((x) => x.codec_type === 'video')
    const video = streams.find((x) => x.codec_type === 'video')
    const audio = streams.find((x) => x.codec_type === 'audio')
    assert.equal(video.nb_frames, original.nb_frames, `${v.muxedFile}: every frame copied`)
    assert.ok(Math.abs(+audio.duration - +video.duration) <= 1024 / 48000, `${audio.duration} s vs ${video.duration} s`)
    // Silence where the audio does not reach: before its first sample, after its last.
    const expectedBeforeS = Math.max(0, v.offsetS)
    const expectedAfterS = Math.max(0, v.videoDurationS - (v.offsetS + audioS))
    assert.ok(Math.abs(v.silenceBeforeS - expectedBeforeS) < 0.01, `before: ${v.silenceBeforeS} vs ${expectedBeforeS}`)
    assert.ok(Math.abs(v.silenceAfterS - expectedAfterS) < 0.05, `after: ${v.silenceAfterS} vs ${expectedAfterS}`)
    assert.ok(result.stderr.includes(path.join(feed, path.basename(v.muxedFile))), 'the table names the muxed file')
  }
  const [a, b, c] = sync.videos
  assert.ok(a.silenceBeforeS > 0.3 && a.silenceAfterS === 0, 'the first trial began before the audio')
  assert.ok(b.silenceBeforeS === 0 && b.silenceAfterS === 0 && b.trimSamples > 0, 'the second lies inside it')
  assert.ok(c.silenceAfterS > 1, 'the third ran on after the ctrl-c')
  // The summary's details (--verbose) are in the sync file's notes.
  const said = sync.notes.map((n) => n.text).join('\n')
  assert.match(said, /3 TracktorLive recordings overlap the audio in .*day/)
  assert.match(result.stderr, /3 videos with this audio:/)
  assert.match(said, /the muxed file has 0\.0 s of silence before its first sample and 1\.\d s after its last/)

  // Sample-exact in each: the tone's first sound in the first trial's file comes its delay after the
  // WAV's; in the third, the tone runs to the audio's last sample and silence follows.
  const inWav = firstSound(wavSamples)
  const inFirst = firstSound(decodeAudio(a.muxedFile))
  assert.ok(
    inWav >= 0 && Math.abs(inFirst - inWav - a.delaySamples) <= 48,
    `sound at ${inWav} of the WAV, ${inFirst} of the first trial's file; delay ${a.delaySamples}`,
  )
  const inThird = decodeAudio(c.muxedFile)
  const audioEnds = wavSamples.length - c.trimSamples
  const loud = (from, to) => inThird.subarray(from, to).reduce((m, x) => Math.max(m, Math.abs(x)), 0)
  assert.ok(loud(audioEnds - 4800, audioEnds - 1200) > 2000, 'the tone up to the last sample')
  assert.ok(loud(audioEnds + 1200, inThird.length) < 50, 'silence after it')

  // mux later makes the same ones (the setting is in the sync file), unless a video is named now.
  const again = run(process.execPath, [TOOL, 'mux', path.join(cwd, `${feed}-audio-sync.json`), '--print', '--json'])
  assert.equal(again.status, 0, again.stderr)
  const later = JSON.parse(again.stdout)
  assert.deepEqual(
    later.videos.map((v) => [v.videoFile, v.offsetS]),
    sync.videos.map((v) => [v.videoFile, v.offsetS]),
  )
  assert.equal(again.stdout.includes('-with-audio-2.mp4'), true, 'never the existing muxed files')
  const one = run(process.execPath, [
    TOOL,
    'mux',
    path.join(cwd, `${feed}-audio-sync.json`),
    '--print',
    '--json',
    '--video',
    second.file,
  ])
  assert.equal(one.status, 0, one.stderr)
  assert.equal(JSON.parse(one.stdout).videos, null)
  assert.equal(JSON.parse(one.stdout).videoFile, second.file)
})

test('--all-videos with no recording overlapping the audio: said, the WAV kept, exit 0', async () => {
  const cwd = tempDir()
  const feedDir = path.join(cwd, 'empty')
  const earlier = startVideoRecorder(feedDir)
  await sleep(800)
  await earlier.stop()
  await sleep(1100)
  const wav = path.join(cwd, 'empty-audio.wav')
  const tool = startTool(['empty', '--format', 'pulse', '--device', pulse.source, '--all-videos'], {
    cwd,
    env: pulse.env,
  })
  await tool.recording(wav)
  await sleep(1000)
  tool.ctrlC()
  const result = await tool.exited
  assert.equal(result.code, 0, result.stderr)
  assert.match(
    result.stderr,
    /No TracktorLive recording \(<ULID>\.mp4\) in .*empty.* overlaps the audio in time \(1 looked at\)/,
  )
  assert.ok(fs.statSync(wav).size > 44)
  const sync = JSON.parse(fs.readFileSync(path.join(cwd, 'empty-audio-sync.json'), 'utf8'))
  assert.deepEqual(sync.videos, [])
  assert.equal(sync.muxCommand, null)
})
