import { createApp } from 'vue'
import App from './App.vue'
import './styles.css'
import './stores/theme'

createApp(App).mount('#app')
