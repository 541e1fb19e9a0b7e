// Which decoder the message views apply to payloads: "auto" decodes Sparkplug B topics only.
import { ref } from 'vue'
import type { DecoderChoice } from '../lib/decoders'

export const decoderChoice = ref<DecoderChoice>('auto')
