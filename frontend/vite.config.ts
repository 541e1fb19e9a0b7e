/// <reference types="vitest/config" />
import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'
import { fileURLToPath } from 'node:url'

// The dashboard server (dashboard/, Flask-SocketIO under Gunicorn) listens on 8082 by default.
const backend = process.env.DASHBOARD_DEV_BACKEND ?? 'http://127.0.0.1:8082'

export default defineConfig({
  base: '/',
  plugins: [vue()],
  build: {
    // Served by the dashboard as its static folder; never committed.
    outDir: fileURLToPath(new URL('../dashboard/static', import.meta.url)),
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 400,
  },
  server: {
    proxy: {
      '/api': { target: backend },
      '/health': { target: backend },
      '/socket.io': { target: backend, ws: true },
    },
  },
  test: {
    environment: 'jsdom',
    include: ['tests/**/*.test.ts'],
    restoreMocks: true,
  },
})
