// The microphone, as PCM16 little-endian batches posted to the page: every render quantum
// is converted and appended; each full batch (~20 ms) goes out as an ArrayBuffer. With no
// input (a muted or ended track) the batches are silence, so audio keeps flowing.

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.batchSamples = options.processorOptions.batchSamples;
    this.startBatch();
  }

  startBatch() {
    this.batch = new DataView(new ArrayBuffer(this.batchSamples * 2));
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0][0];
    const frames = channel ? channel.length : 128;
    for (let i = 0; i < frames; i++) {
      this.append(channel ? channel[i] : 0);
    }
    return true;
  }

  append(sample) {
    const clamped = Math.max(-1, Math.min(1, sample));
    const pcm = clamped < 0 ? clamped * 0x8000 : clamped * 0x7fff;
    this.batch.setInt16(this.filled * 2, Math.round(pcm), true);
    this.filled += 1;
    if (this.filled === this.batchSamples) {
      this.port.postMessage(this.batch.buffer, [this.batch.buffer]);
      this.startBatch();
    }
  }
}

registerProcessor("capture", CaptureProcessor);
