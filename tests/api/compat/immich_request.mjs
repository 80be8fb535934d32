// Posts one image to /predict exactly as the Immich server's MachineLearningRepository
// builds the request (server/src/repositories/machine-learning.repository.ts): Node's
// FormData, `entries` as a JSON string, the file as a Blob (no type; filename "blob"),
// fetch() with the URL resolved against the configured machine-learning URL.
// Usage: node immich_request.mjs <ml-url> <image-path> <modelName> <minScore> <relative|absolute> [task]
// Prints {"status": <HTTP status>, "body": <text>} on stdout.
import { readFile } from 'node:fs/promises';

const [url, imagePath, modelName, minScore, resolution, task] = process.argv.slice(2);

const config = task === 'clip'
  ? { clip: { visual: { modelName } } }
  : {
      'facial-recognition': {
        detection: { modelName, options: { minScore: Number(minScore) } },
        recognition: { modelName },
      },
    };

const formData = new FormData();
formData.append('entries', JSON.stringify(config));
const fileBuffer = await readFile(imagePath);
formData.append('image', new Blob([new Uint8Array(fileBuffer)]));

// Newer releases resolve 'predict' relative to the URL (a path prefix survives when the URL
// ends with '/'); older ones use '/predict' (origin root).
const target = new URL(resolution === 'relative' ? 'predict' : '/predict', url);
const ping = await fetch(new URL(resolution === 'relative' ? 'ping' : '/ping', url));
const response = await fetch(target, { method: 'POST', body: formData });
process.stdout.write(
  JSON.stringify({ status: response.status, ping: await ping.text(), body: await response.text() }),
);
