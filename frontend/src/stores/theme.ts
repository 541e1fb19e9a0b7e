import { ref, watch } from 'vue'

export type Theme = 'light' | 'dark'
const KEY = 'mqtt-dashboard:theme'

function initial(): Theme {
  try {
    const saved = localStorage.getItem(KEY)
    if (saved === 'light' || saved === 'dark') return saved
  } catch {
    // storage unavailable
  }
  return typeof window !== 'undefined' && window.matchMedia?.('(prefers-color-scheme: dark)').matches ? 'dark' : 'light'
}

export const theme = ref<Theme>(initial())

function apply(t: Theme): void {
  if (typeof document !== 'undefined') document.documentElement.dataset.theme = t
}
apply(theme.value)

watch(theme, (t) => {
  apply(t)
  try {
    localStorage.setItem(KEY, t)
  } catch {
    // storage unavailable
  }
})

export function toggleTheme(): void {
  theme.value = theme.value === 'dark' ? 'light' : 'dark'
}
