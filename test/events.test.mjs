// Sync events: a flash in view and a click heard at the same moments, found in real files made by
// the real ffmpeg; `check` reads a file's own sync, `mux --events` corrects anchors that are off.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { tempDir, run, requireBinary, ulidAt, TOOL } from './helpers.mjs'

/** A 12 s, 30 fps video with a white frame at every whole second, and a WAV clicking `clickLateS` after each. */
function makeEventFiles(dir, videoStartMs, audioEarlyS) {
  requireBinary('ffmpeg')
  fs.mkdirSync(path.join(dir, 'feed'))
  const video = path.join(dir, 'feed', `${ulidAt(videoStartMs)}.mp4`)
  const made = run('ffmpeg', [
    ...['-v', 'error', '-f', 'lavfi', '-i', 'color=c=0x202020:s=160x120:r=30:d=12'],
    ...['-vf', "drawbox=c=white:t=fill:enable='eq(mod(n,30),0)'", '-c:v', 'mpeg4', video],
  ])
  assert.equal(made.status, 0, made.stderr)
  // The audio started audioEarlyS before the video's first frame: each click at its flash's time.
  const audio = path.join(dir, 'feed-audio.wav')
  const click = `if(lt(mod(t-${audioEarlyS},1),0.002),0.7,0)+0.003*(random(0)-0.5)`
  const wav = run('ffmpeg', [
    ...['-v', 'error', '-f', 'lavfi', '-i', `aevalsrc='${click}':s=48000:d=13`, '-c:a', 'pcm_s16le', audio],
  ])
  assert.equal(wav.status, 0, wav.stderr)
  return { video, audio }
}

function check(file) {
  const out = run(process.execPath, [TOOL, 'check', file, '--json'])
  return { ...out, fit: out.stdout ? JSON.parse(out.stdout) : null }
}

test('check: a file whose sound is 40 ms late at every flash says +40 ms, no drift; one without events says so, exit 1', () => {
  const dir = tempDir()
  const { video, audio } = makeEventFiles(dir, Date.now() - 20000, 0)
  const late = path.join(dir, 'late.mp4')
  const muxed = run('ffmpeg', [
    ...['-v', 'error', '-i', video, '-itsoffset', '0.04', '-i', audio, '-map', '0:v', '-map', '1:a'],
    ...['-c:v', 'copy', '-c:a', 'pcm_s16le', '-f', 'mov', late],
  ])
  assert.equal(muxed.status, 0, muxed.stderr)
  const { status, fit, stderr } = check(late)
  assert.equal(status, 0, stderr)
  assert.equal(fit.used, 12)
  assert.ok(Math.abs(fit.medianS - 0.04) < 0.0005, String(fit.medianS))
  assert.ok(Math.abs(fit.driftS) < 0.0005 && fit.spreadS < 0.001, JSON.stringify(fit))
  const human = run(process.execPath, [TOOL, 'check', late])
  assert.match(human.stderr, /✔ late\.mp4: 12 events: sound \+40\.\d ms from the picture/)
  const silent = path.join(dir, 'silent.mp4')
  run('ffmpeg', ['-v', 'error', '-i', video, '-f', 'lavfi', '-i', 'anullsrc=r=48000:cl=mono', '-shortest', silent])
  const none = check(silent)
  assert.equal(none.status, 1)
  assert.equal(none.fit.consistent, false)
})

test('mux --events: anchors 200 ms off are corrected on the flashes and clicks; the muxed file checks at 0 ms; stored in the sync file', () => {
  const dir = tempDir()
  const videoStartMs = Date.now() - 30000
  const { video, audio } = makeEventFiles(dir, videoStartMs, 0.25)
  // What a recording would have stored, with the audio's start 200 ms later than it was.
  const syncFile = path.join(dir, 'feed-audio-sync.json')
  const claimedStartS = videoStartMs / 1000 - 0.25 + 0.2
  fs.writeFileSync(
    syncFile,
    JSON.stringify({
      tool: 'record-audio test',
      state: 'stopped',
      feedDir: path.join(dir, 'feed'),
      audioFile: audio,
      audioFormat: 'pulse',
      audioDevice: 'test',
      audioSampleRate: 48000,
      audioChannels: 1,
      audioStartEpochS: claimedStartS,
      audioStartSource: 'ffmpeg-input-start',
      audioDurationS: 13,
      timing: { driftFix: false },
    }),
  )
  const plain = run(process.execPath, [TOOL, 'mux', syncFile, '--muxed-out', path.join(dir, 'plain.mp4')])
  assert.equal(plain.status, 0, plain.stderr)
  const off = check(path.join(dir, 'plain.mp4')).fit
  assert.ok(Math.abs(off.medianS - 0.2) < 0.002, `the anchors put the sound 200 ms late: ${off.medianS}`)

  const fixed = run(process.execPath, [
    TOOL,
    'mux',
    syncFile,
    '--events',
    '--json',
    '--muxed-out',
    path.join(dir, 'events.mp4'),
  ])
  assert.equal(fixed.status, 0, fixed.stderr)
  assert.match(fixed.stderr, /✔ Events: the anchors were off by \+20\d\.\d ms/)
  const record = JSON.parse(fixed.stdout)
  assert.equal(record.events.applied, true)
  assert.equal(record.events.used, 12)
  assert.ok(Math.abs(record.offsetS - -0.25) < 0.001, String(record.offsetS))
  const after = check(path.join(dir, 'events.mp4')).fit
  assert.ok(Math.abs(after.medianS) < 0.001 && after.spreadS < 0.002, JSON.stringify(after))
  assert.equal(video.endsWith('.mp4'), true)
})
